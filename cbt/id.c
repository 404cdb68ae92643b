/*
 * id.c - change IDs as VMware writes them:
 * "52 de c0 38 6a 25 9e 60-3c 8a 8c 1b 8e 90 67 08/4".
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cbt/cbt.h"

void cbt_id_format(const struct cbt_id *id, char out[CBT_ID_LEN])
{
	size_t n = 0;

	for (int i = 0; i < 16; i++)
		n += (size_t)snprintf(out + n, CBT_ID_LEN - n, "%s%02x",
				      i == 0 ? "" : i == 8 ? "-" : " ", id->uuid[i]);
	snprintf(out + n, CBT_ID_LEN - n, "/%u", id->seq);
}

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	if (c >= 'A' && c <= 'F')
		return c - 'A' + 10;
	return -1;
}

int cbt_id_parse(const char *s, struct cbt_id *id)
{
	unsigned long long v = 0;
	const char *p = s;

	for (int i = 0; i < 16; i++) {
		int hi, lo;

		if (i && *p++ != (i == 8 ? '-' : ' '))
			return -CBT_E_BADID;
		hi = hexval(p[0]);
		lo = hi < 0 ? -1 : hexval(p[1]);
		if (lo < 0)
			return -CBT_E_BADID;
		id->uuid[i] = (uint8_t)(hi << 4 | lo);
		p += 2;
	}
	if (*p++ != '/' || *p < '0' || *p > '9')
		return -CBT_E_BADID;
	/* decimal, no sign, no leading zeros beyond "0", fits 32 bits */
	if (*p == '0' && p[1])
		return -CBT_E_BADID;
	for (; *p >= '0' && *p <= '9'; p++) {
		v = v * 10 + (unsigned)(*p - '0');
		if (v > 0xffffffffull)
			return -CBT_E_BADID;
	}
	if (*p)
		return -CBT_E_BADID;
	id->seq = (uint32_t)v;
	return 0;
}

const char *cbt_strerror(int err)
{
	switch (-err) {
	case CBT_E_BADMAGIC: return "not a change tracking file";
	case CBT_E_CHECKSUM: return "change tracking file damaged (checksum)";
	case CBT_E_VERSION: return "change tracking file of a newer version";
	case CBT_E_CORRUPT: return "change tracking file damaged (fields out "
				   "of range)";
	case CBT_E_RESET: return "tracking was reset: take a full backup";
	case CBT_E_OTHER: return "change ID of another tracking of the disk "
				 "(disabled and enabled again, or another disk)";
	case CBT_E_FUTURE: return "change ID not issued by this tracking";
	case CBT_E_BADID: return "not a change ID (\"xx xx xx xx xx xx xx "
				 "xx-xx xx xx xx xx xx xx xx/N\" or \"*\")";
	default: return fs_strerror(err);
	}
}
