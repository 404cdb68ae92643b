/*
 * test_thin_vmdk - VMware disk descriptors: what ESX writes parses, ours
 * round-trip, bad descriptors are refused with the line named.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <cmocka.h>

#include "thin/vmdk.h"

/* As ESX 6.7 writes a thin disk (with a CBT file). */
static const char esx[] =
	"# Disk DescriptorFile\r\n"
	"version=1\n"
	"encoding=\"UTF-8\"\n"
	"CID=5c0e5f5a\n"
	"parentCID=ffffffff\n"
	"isNativeSnapshot=\"no\"\n"
	"createType=\"vmfs\"\n"
	"\n"
	"# Extent description\n"
	"RW 41943040 VMFS \"web 01-flat.vmdk\"\n"
	"\n"
	"# Change Tracking File\n"
	"changeTrackPath=\"web 01-ctk.vmdk\"\n"
	"\n"
	"# The Disk Data Base\n"
	"#DDB\n"
	"\n"
	"ddb.adapterType = \"lsilogic\"\n"
	"ddb.geometry.cylinders = \"2610\"\n"
	"ddb.geometry.heads = \"255\"\n"
	"ddb.geometry.sectors = \"63\"\n"
	"ddb.thinProvisioned = \"1\"\n"
	"ddb.uuid = \"60 00 C2 9b 69 2f c9 76-74 c4 07 9e 10 87 3b f9\"\n"
	"ddb.virtualHWVersion = \"14\"\n";

static void test_esx(void **state)
{
	struct thin_desc d, e;
	char err[256], buf[8192];
	int n;

	(void)state;
	assert_int_equal(thin_desc_parse(esx, strlen(esx), &d, err, sizeof(err)), 0);
	assert_string_equal(d.create_type, "vmfs");
	assert_int_equal(d.cid, 0x5c0e5f5a);
	assert_int_equal(d.parent_cid, 0xffffffffu);
	assert_int_equal(d.nextents, 1);
	assert_string_equal(d.ext[0].file, "web 01-flat.vmdk");
	assert_string_equal(d.ext[0].type, "VMFS");
	assert_true(thin_desc_size(&d) == 41943040ull * 512);
	assert_string_equal(d.change_track, "web 01-ctk.vmdk");
	assert_string_equal(thin_ddb_get(&d, "ddb.thinProvisioned"), "1");
	assert_string_equal(thin_ddb_get(&d, "isNativeSnapshot"), "no");
	/* written back and read again: the same */
	n = thin_desc_format(&d, buf, sizeof(buf));
	assert_true(n > 0);
	assert_int_equal(thin_desc_parse(buf, (size_t)n, &e, err, sizeof(err)), 0);
	assert_memory_equal(&d, &e, sizeof(d));
	assert_non_null(strstr(buf, "isNativeSnapshot=\"no\"\n"));
	assert_non_null(strstr(buf, "ddb.uuid = \"60 00 C2 9b"));
}

static void test_new_resize(void **state)
{
	struct thin_desc d, e;
	char err[256], buf[8192];
	int n;

	(void)state;
	assert_int_equal(thin_desc_new(&d, THIN_ZEROEDTHICK, 10ull << 30,
				       "d-flat.vmdk"), 0);
	assert_string_equal(thin_ddb_get(&d, "ddb.geometry.cylinders"), "1305");
	assert_string_equal(thin_ddb_get(&d, "ddb.thinProvisioned"), "");
	assert_int_equal(thin_desc_resize(&d, 20ull << 30), 0);
	assert_true(thin_desc_size(&d) == 20ull << 30);
	assert_string_equal(thin_ddb_get(&d, "ddb.geometry.cylinders"), "2610");
	assert_int_equal(thin_desc_resize(&d, 1ull << 30), -EINVAL);   /* shrink */
	n = thin_desc_format(&d, buf, sizeof(buf));
	assert_int_equal(thin_desc_parse(buf, (size_t)n, &e, err, sizeof(err)), 0);
	assert_memory_equal(&d, &e, sizeof(d));
	assert_int_equal(thin_desc_new(&d, THIN_RDMP, 1 << 20, "r-rdmp.vmdk"), 0);
	assert_string_equal(d.create_type, "vmfsPassthroughRawDeviceMap");
	assert_string_equal(d.ext[0].type, "VMFSRDM");
	assert_int_equal(thin_desc_new(&d, THIN_THIN, 1000, "x"), -EINVAL);
	assert_int_equal(thin_desc_new(&d, THIN_THIN, 4096, "../x"), -EINVAL);
	assert_int_equal(thin_desc_format(&e, buf, 100), -ENOSPC);
}

static void bad(const char *text, const char *want)
{
	struct thin_desc d;
	char err[256] = "";

	assert_int_equal(thin_desc_parse(text, strlen(text), &d, err, sizeof(err)),
			 -EINVAL);
	if (!strstr(err, want))
		fail_msg("'%s' gave '%s', want '%s'", text, err, want);
}

static void test_bad(void **state)
{
	char big[THIN_DESC_MAX + 10];

	(void)state;
	bad("RW 10 VMFS \"a\"\n", "no createType");
	bad("createType=\"vmfs\"\n", "no extent");
	bad("createType=\"vmfs\"\nRW ten VMFS \"a\"\n", "line 2: extent size");
	bad("createType=\"vmfs\"\nRW 0 VMFS \"a\"\n", "extent size");
	bad("createType=\"vmfs\"\nRW 10 VMFS \"/etc/passwd\"\n", "inside the");
	bad("createType=\"vmfs\"\nRW 10 VMFS \"../other/x\"\n", "inside the");
	bad("createType=\"vmfs\"\nRW 10 VMFS \"a\n", "unterminated");
	bad("createType=\"vmfs\"\nRW 10 VMFS\n", "needs a file");
	bad("createType=\"vmfs\"\nRW 10 VMFS \"a\" 5 6\n", "ACCESS SECTORS TYPE");
	bad("createType=\"vmfs\nRW 10 VMFS \"a\"\n", "line 1: badly quoted");
	bad("CID=xyz\n", "line 1: CID");
	bad("createType=\"vmfs\"\nhello\n", "line 2: neither");
	bad("createType=\"vmfs\"\nchangeTrackPath=\"/x\"\nRW 1 VMFS \"a\"\n", "changeTrackPath");
	memset(big, 'a', sizeof(big));
	{
		struct thin_desc d;
		char err[128];

		assert_int_equal(thin_desc_parse(big, sizeof(big), &d, err, sizeof(err)),
				 -EINVAL);
		assert_non_null(strstr(err, "longer than"));
		assert_int_equal(thin_desc_parse("a\0b", 3, &d, err, sizeof(err)),
				 -EINVAL);
		assert_non_null(strstr(err, "binary"));
		/* as qemu rewrites one: padded with NULs */
		memset(big, 0, sizeof(big));
		memcpy(big, esx, strlen(esx));
		assert_int_equal(thin_desc_parse(big, 10240, &d, err, sizeof(err)), 0);
		assert_int_equal(d.nextents, 1);
	}
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_esx),
		cmocka_unit_test(test_new_resize),
		cmocka_unit_test(test_bad),
	};

	return cmocka_run_group_tests(tests, NULL, NULL);
}
