/*
 * vmdk.c - parse and write VMware disk descriptors (vmdk.h).
 */
#include <ctype.h>
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include "thin/vmdk.h"

static const char *const kind_names[] = {
	[THIN_THIN] = "thin",
	[THIN_ZEROEDTHICK] = "zeroedthick",
	[THIN_EAGERZEROEDTHICK] = "eagerzeroedthick",
	[THIN_RDM] = "rdm",
	[THIN_RDMP] = "rdmp",
};

const char *thin_kind_name(enum thin_kind k)
{
	return k >= THIN_THIN && k <= THIN_RDMP ? kind_names[k] : "?";
}

int thin_kind_parse(const char *s, enum thin_kind *k)
{
	if (!strcmp(s, "thin"))
		*k = THIN_THIN;
	else if (!strcmp(s, "zeroedthick") || !strcmp(s, "thick"))
		*k = THIN_ZEROEDTHICK;
	else if (!strcmp(s, "eagerzeroedthick"))
		*k = THIN_EAGERZEROEDTHICK;
	else
		return -EINVAL;
	return 0;
}

static int bad(char *err, size_t len, unsigned line, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int bad(char *err, size_t len, unsigned line, const char *fmt, ...)
{
	va_list ap;
	int n = snprintf(err, len, "descriptor line %u: ", line);

	va_start(ap, fmt);
	if (n >= 0 && (size_t)n < len)
		vsnprintf(err + n, len - (size_t)n, fmt, ap);
	va_end(ap);
	return -EINVAL;
}

static char *trim(char *s)
{
	char *e;

	while (*s == ' ' || *s == '\t')
		s++;
	e = s + strlen(s);
	while (e > s && (e[-1] == ' ' || e[-1] == '\t' || e[-1] == '\r'))
		*--e = 0;
	return s;
}

/* A value: "quoted" (no escapes in the format) or a bare word. */
static int unquote(char *v, char **out)
{
	size_t n = strlen(v);

	if (n && v[0] == '"') {
		if (n < 2 || v[n - 1] != '"' || memchr(v + 1, '"', n - 2))
			return -1;
		v[n - 1] = 0;
		v++;
	} else if (strchr(v, '"')) {
		return -1;
	}
	*out = v;
	return 0;
}

static int parse_u64(const char *s, uint64_t *v, int base)
{
	char *end;

	if (!*s || *s == '-' || *s == '+' || isspace((unsigned char)*s))
		return -1;
	errno = 0;
	*v = strtoull(s, &end, base);
	return errno || *end ? -1 : 0;
}

/* Extent file names stay inside the descriptor's folder. */
static bool safe_name(const char *f)
{
	const char *p = f;

	if (!*f || *f == '/')
		return false;
	while (*p) {
		const char *e = strchrnul(p, '/');

		if ((e - p == 2 && !strncmp(p, "..", 2)) || e == p)
			return false;
		p = *e ? e + 1 : e;
	}
	return true;
}

static int parse_extent(char *line, struct thin_extent *x, unsigned ln,
			char *err, size_t errlen)
{
	char *tok[5] = { 0 }, *p = line, *q;
	unsigned n = 0;

	memset(x, 0, sizeof(*x));
	/* ACCESS SECTORS TYPE ["FILE" [OFFSET]]: the file may hold blanks */
	while (*p && n < 5) {
		while (*p == ' ' || *p == '\t')
			p++;
		if (!*p)
			break;
		if (*p == '"') {
			if (n != 3)
				return bad(err, errlen, ln, "only the file name "
					   "is quoted in an extent");
			q = strchr(p + 1, '"');
			if (!q)
				return bad(err, errlen, ln, "unterminated file name");
			tok[n++] = p + 1;
			*q = 0;
			p = q + 1;
			if (*p && *p != ' ' && *p != '\t')
				return bad(err, errlen, ln, "text after the file name");
			continue;
		}
		tok[n++] = p;
		while (*p && *p != ' ' && *p != '\t') {
			if (*p == '"')
				return bad(err, errlen, ln, "a quote inside a word");
			p++;
		}
		if (*p)
			*p++ = 0;
	}
	while (*p == ' ' || *p == '\t')
		p++;
	if (*p || n < 3)
		return bad(err, errlen, ln, "an extent is ACCESS SECTORS TYPE "
			   "[\"FILE\" [OFFSET]]");
	if (strlen(tok[0]) >= sizeof(x->access) || strlen(tok[2]) >= sizeof(x->type))
		return bad(err, errlen, ln, "unknown extent access or type");
	strcpy(x->access, tok[0]);
	strcpy(x->type, tok[2]);
	if (strcmp(x->access, "RW") && strcmp(x->access, "RDONLY") &&
	    strcmp(x->access, "NOACCESS"))
		return bad(err, errlen, ln, "extent access '%s' (RW, RDONLY, "
			   "NOACCESS)", x->access);
	if (parse_u64(tok[1], &x->sectors, 10) || !x->sectors ||
	    x->sectors > (1ull << 53))
		return bad(err, errlen, ln, "extent size '%s' sectors", tok[1]);
	if (n >= 4) {
		if (strlen(tok[3]) >= sizeof(x->file) || !safe_name(tok[3]))
			return bad(err, errlen, ln, "extent file \"%s\": a name "
				   "inside the descriptor's folder", tok[3]);
		strcpy(x->file, tok[3]);
	} else if (strcmp(x->type, "ZERO")) {
		return bad(err, errlen, ln, "a %s extent needs a file", x->type);
	}
	if (n == 5) {
		if (parse_u64(tok[4], &x->offset, 10))
			return bad(err, errlen, ln, "extent offset '%s'", tok[4]);
		x->has_offset = true;
	}
	return 0;
}

int thin_desc_parse(const char *text, size_t len, struct thin_desc *d,
		    char *err, size_t errlen)
{
	char *buf, *line, *save = NULL;
	unsigned ln = 0;
	bool header = false;
	int ret = 0;

	memset(d, 0, sizeof(*d));
	d->version = 1;
	d->parent_cid = 0xffffffffu;
	if (len > THIN_DESC_MAX)
		return bad(err, errlen, 0, "longer than %u bytes: not a descriptor",
			   THIN_DESC_MAX);
	/* qemu rewrites a descriptor padded with NULs to its buffer size:
	 * the text ends at the first NUL, and only NULs may follow it */
	{
		const char *nul = memchr(text, 0, len);

		if (nul) {
			for (const char *p = nul; p < text + len; p++)
				if (*p)
					return bad(err, errlen, 0, "binary data: "
						   "not a text descriptor");
			len = (size_t)(nul - text);
		}
	}
	buf = malloc(len + 1);
	if (!buf)
		return -ENOMEM;
	memcpy(buf, text, len);
	buf[len] = 0;
	for (line = buf; line && !ret; line = save) {
		char *nl = strchr(line, '\n'), *s, *eq, *k, *v;

		save = nl ? nl + 1 : NULL;
		if (nl)
			*nl = 0;
		ln++;
		for (const unsigned char *c = (const unsigned char *)line; *c; c++)
			if ((*c < 0x20 && *c != '\t' && *c != '\r') || *c == 0x7f) {
				ret = bad(err, errlen, ln, "control character 0x%02x",
					  *c);
				break;
			}
		if (ret)
			break;
		s = trim(line);
		if (!*s)
			continue;
		if (*s == '#') {
			if (strstr(s, "Disk DescriptorFile"))
				header = true;
			continue;
		}
		if (!strncmp(s, "RW ", 3) || !strncmp(s, "RDONLY ", 7) ||
		    !strncmp(s, "NOACCESS ", 9)) {
			if (d->nextents == THIN_MAX_EXTENTS) {
				ret = bad(err, errlen, ln, "more than %u extents",
					  THIN_MAX_EXTENTS);
				break;
			}
			ret = parse_extent(s, &d->ext[d->nextents], ln, err, errlen);
			if (!ret)
				d->nextents++;
			continue;
		}
		eq = strchr(s, '=');
		if (!eq) {
			ret = bad(err, errlen, ln, "neither key = value nor an extent");
			break;
		}
		*eq = 0;
		k = trim(s);
		if (unquote(trim(eq + 1), &v)) {
			ret = bad(err, errlen, ln, "badly quoted value of %s", k);
			break;
		}
		if (!*k || strlen(k) >= sizeof(d->ddb[0].key) ||
		    strlen(v) >= sizeof(d->ddb[0].value)) {
			ret = bad(err, errlen, ln, "key or value too long");
			break;
		}
		if (strpbrk(k, " \t")) {
			ret = bad(err, errlen, ln, "key '%s' with blanks", k);
			break;
		}
		if (!strcmp(k, "version")) {
			uint64_t x;

			if (parse_u64(v, &x, 10) || x < 1 || x > 3)
				ret = bad(err, errlen, ln, "version %s", v);
			else
				d->version = (uint32_t)x;
		} else if (!strcmp(k, "CID") || !strcmp(k, "parentCID")) {
			uint64_t x;

			if (parse_u64(v, &x, 16) || x > 0xffffffffull)
				ret = bad(err, errlen, ln, "%s %s (8 hex digits)", k, v);
			else if (!strcmp(k, "CID"))
				d->cid = (uint32_t)x;
			else
				d->parent_cid = (uint32_t)x;
		} else if (!strcmp(k, "createType")) {
			if (strlen(v) >= sizeof(d->create_type))
				ret = bad(err, errlen, ln, "createType too long");
			else
				strcpy(d->create_type, v);
		} else if (!strcmp(k, "parentFileNameHint")) {
			snprintf(d->parent_hint, sizeof(d->parent_hint), "%s", v);
		} else if (!strcmp(k, "changeTrackPath")) {
			if (!safe_name(v))
				ret = bad(err, errlen, ln, "changeTrackPath \"%s\": a "
					  "name inside the descriptor's folder", v);
			else
				snprintf(d->change_track, sizeof(d->change_track),
					 "%s", v);
		} else if (!strcmp(k, "encoding")) {
			/* we write UTF-8; others are read as bytes */
		} else {
			ret = thin_ddb_set(d, k, v);
			if (ret)
				ret = bad(err, errlen, ln, "%s", ret == -ENOSPC ?
					  "too many keys" : "bad key or value");
		}
	}
	free(buf);
	if (!ret && !d->create_type[0])
		ret = bad(err, errlen, ln, "no createType: not a disk descriptor%s",
			  header ? "" : " (no \"# Disk DescriptorFile\" either)");
	if (!ret && !d->nextents)
		ret = bad(err, errlen, ln, "no extent");
	return ret;
}

static int put(char *buf, size_t len, size_t *off, const char *fmt, ...)
	__attribute__((format(printf, 4, 5)));
static int put(char *buf, size_t len, size_t *off, const char *fmt, ...)
{
	va_list ap;
	int n;

	va_start(ap, fmt);
	n = vsnprintf(buf + *off, len - *off, fmt, ap);
	va_end(ap);
	if (n < 0 || (size_t)n >= len - *off)
		return -ENOSPC;
	*off += (size_t)n;
	return 0;
}

int thin_desc_format(const struct thin_desc *d, char *buf, size_t len)
{
	size_t off = 0;
	int r = 0;

	if (!len)
		return -ENOSPC;
	buf[0] = 0;
	r |= put(buf, len, &off, "# Disk DescriptorFile\nversion=%u\n"
		 "encoding=\"UTF-8\"\nCID=%08x\nparentCID=%08x\n"
		 "createType=\"%s\"\n", d->version, d->cid, d->parent_cid,
		 d->create_type);
	if (d->parent_hint[0])
		r |= put(buf, len, &off, "parentFileNameHint=\"%s\"\n",
			 d->parent_hint);
	for (unsigned i = 0; i < d->nddb; i++)
		if (strncmp(d->ddb[i].key, "ddb.", 4))
			r |= put(buf, len, &off, "%s=\"%s\"\n", d->ddb[i].key,
				 d->ddb[i].value);
	r |= put(buf, len, &off, "\n# Extent description\n");
	for (unsigned i = 0; i < d->nextents; i++) {
		const struct thin_extent *x = &d->ext[i];

		r |= put(buf, len, &off, "%s %llu %s", x->access,
			 (unsigned long long)x->sectors, x->type);
		if (x->file[0])
			r |= put(buf, len, &off, " \"%s\"", x->file);
		if (x->has_offset)
			r |= put(buf, len, &off, " %llu",
				 (unsigned long long)x->offset);
		r |= put(buf, len, &off, "\n");
	}
	if (d->change_track[0])
		r |= put(buf, len, &off, "\n# Change Tracking File\n"
			 "changeTrackPath=\"%s\"\n", d->change_track);
	r |= put(buf, len, &off, "\n# The Disk Data Base\n#DDB\n\n");
	for (unsigned i = 0; i < d->nddb; i++)
		if (!strncmp(d->ddb[i].key, "ddb.", 4))
			r |= put(buf, len, &off, "%s = \"%s\"\n", d->ddb[i].key,
				 d->ddb[i].value);
	return r ? -ENOSPC : (int)off;
}

uint64_t thin_desc_size(const struct thin_desc *d)
{
	uint64_t s = 0;

	for (unsigned i = 0; i < d->nextents; i++)
		s += d->ext[i].sectors * 512;
	return s;
}

const char *thin_ddb_get(const struct thin_desc *d, const char *key)
{
	for (unsigned i = 0; i < d->nddb; i++)
		if (!strcmp(d->ddb[i].key, key))
			return d->ddb[i].value;
	return "";
}

int thin_ddb_set(struct thin_desc *d, const char *key, const char *value)
{
	unsigned i;

	if (strlen(key) >= sizeof(d->ddb[0].key) ||
	    strlen(value) >= sizeof(d->ddb[0].value) || strchr(value, '"') ||
	    strchr(value, '\n'))
		return -EINVAL;
	for (i = 0; i < d->nddb; i++)
		if (!strcmp(d->ddb[i].key, key))
			break;
	if (i == d->nddb) {
		if (d->nddb == THIN_MAX_DDB)
			return -ENOSPC;
		d->nddb++;
		strcpy(d->ddb[i].key, key);
	}
	strcpy(d->ddb[i].value, value);
	return 0;
}

static void set_geometry(struct thin_desc *d, uint64_t size)
{
	char v[32];
	uint64_t cyl = size / 512 / (255 * 63);

	snprintf(v, sizeof(v), "%llu", (unsigned long long)(cyl ? cyl : 1));
	thin_ddb_set(d, "ddb.geometry.cylinders", v);
	thin_ddb_set(d, "ddb.geometry.heads", "255");
	thin_ddb_set(d, "ddb.geometry.sectors", "63");
}

int thin_desc_new(struct thin_desc *d, enum thin_kind kind, uint64_t size,
		  const char *extent_file)
{
	uint8_t r[36];
	char u[64], l[40];
	int n = 0;

	if (!size || size % 512 || size > (1ull << 62) || !safe_name(extent_file) ||
	    strlen(extent_file) >= sizeof(d->ext[0].file))
		return -EINVAL;
	if (getrandom(r, sizeof(r), 0) != sizeof(r))
		return -EIO;
	memset(d, 0, sizeof(*d));
	d->version = 1;
	memcpy(&d->cid, r, 4);
	if (d->cid >= 0xfffffffeu)
		d->cid = 0x12345678u;
	d->parent_cid = 0xffffffffu;
	d->nextents = 1;
	strcpy(d->ext[0].access, "RW");
	d->ext[0].sectors = size / 512;
	snprintf(d->ext[0].file, sizeof(d->ext[0].file), "%s", extent_file);
	switch (kind) {
	case THIN_RDM:
		strcpy(d->create_type, "vmfsRawDeviceMap");
		strcpy(d->ext[0].type, "VMFSRDM");
		break;
	case THIN_RDMP:
		/* ESX names both kinds of mapping VMFSRDM (VMFSRAW is the
		 * older vmfsRaw type); the createType tells them apart */
		strcpy(d->create_type, "vmfsPassthroughRawDeviceMap");
		strcpy(d->ext[0].type, "VMFSRDM");
		break;
	default:
		strcpy(d->create_type, "vmfs");
		strcpy(d->ext[0].type, "VMFS");
	}
	thin_ddb_set(d, "ddb.adapterType", "lsilogic");
	set_geometry(d, size);
	for (int i = 0; i < 16; i++)
		n += snprintf(u + n, sizeof(u) - (size_t)n, i ? " %02x" : "%02x",
			      r[4 + i]);
	for (int i = 0; i < 16; i++)
		snprintf(l + 2 * i, sizeof(l) - 2 * (size_t)i, "%02x", r[20 + i]);
	thin_ddb_set(d, "ddb.longContentID", l);
	thin_ddb_set(d, "ddb.uuid", u);
	thin_ddb_set(d, "ddb.virtualHWVersion", "13");
	if (kind == THIN_THIN)
		thin_ddb_set(d, "ddb.thinProvisioned", "1");
	return 0;
}

int thin_desc_resize(struct thin_desc *d, uint64_t size)
{
	uint64_t cur = thin_desc_size(d);

	if (!size || size % 512 || !d->nextents)
		return -EINVAL;
	if (size < cur)
		return -EINVAL;            /* disks only grow */
	d->ext[d->nextents - 1].sectors += (size - cur) / 512;
	set_geometry(d, size);
	return 0;
}
