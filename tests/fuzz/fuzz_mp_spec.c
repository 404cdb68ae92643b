/*
 * fuzz_mp_spec - libFuzzer target: LUN spec strings (fault options and
 * rules, local options, scheme dispatch).  The inner device never exists,
 * so only parsing runs; a spec must either be refused or fail to open.
 */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "multipath/mp.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
	static const char *const shapes[] = {
		"fault:%s:/nonexistent/vmfs-fuzz.img",
		"/nonexistent/vmfs-fuzz.img?%s",
		"fault:wcache;%s:fault:%s:/nonexistent/x",
		"%s",
	};
	static const struct mp_open_opts ro = { .flags = MP_OPEN_RDONLY };
	char arg[512], spec[1200];
	mp_lun *lun = NULL;
	size_t n = size < sizeof(arg) - 1 ? size : sizeof(arg) - 1;

	if (size == 0)
		return 0;
	memcpy(arg, data + 1, n ? n - 1 : 0);
	arg[n ? n - 1 : 0] = 0;
	if (strlen(arg) != (n ? n - 1 : 0))
		return 0;          /* embedded NUL: not a C string */
	/* iscsi:// would try to connect: not here */
	if (strstr(arg, "iscsi:"))
		return 0;
	snprintf(spec, sizeof(spec), shapes[data[0] % 4], arg, arg);
	if (strncmp(spec, "/", 1) && strncmp(spec, "fault:", 6) &&
	    strncmp(spec, "file:", 5))
		return 0;          /* a relative path could open a real file */
	if (mp_lun_open(spec, &ro, &lun) == 0) {
		/* only possible if the fuzzer built a path to a real file */
		mp_lun_close(lun);
	}
	return 0;
}
