/*
 * test_hv_vmx.c - the .vmx parser: keys and defaults, path resolution,
 * disks, and a clear error (with the line) for everything it refuses.
 */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cmocka.h>

#include "hypervisor/hv.h"
#include "tests/unit/testutil.h"

static int parse(const char *text, struct hv_vmx *v, char *err)
{
	return hv_vmx_parse(text, strlen(text), "/vm/dir", v, err, 256);
}

static void test_minimal_defaults(void **state)
{
	struct hv_vmx v;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse("boot.kernel = \"k.elf\"\n", &v, err), 0);
	assert_string_equal(v.kernel, "/vm/dir/k.elf");
	assert_int_equal(v.mem_mib, 256);
	assert_int_equal(v.vcpus, 1);
	assert_string_equal(v.cmdline, "");
	assert_null(v.initrd);
	assert_null(v.serial_file);
	assert_int_equal(v.ndisks, 0);
	hv_vmx_free(&v);
}

static void test_full(void **state)
{
	static const char text[] =
		"# a VM\r\n"
		".encoding = \"UTF-8\"\r\n"
		"config.version = \"8\"\n"
		"\n"
		"DisplayName = \"web 01\"   # trailing comment\n"
		"memsize = \"1024\"\n"
		"numvcpus = 4\n"
		"boot.kernel = \"/abs/vmlinux\"\n"
		"boot.initrd = \"initrd.img\"\n"
		"boot.cmdline = \"console=ttyS0 vmtest=fill\"\n"
		"scsi0.virtualDev = \"virtio-blk\"\n"
		"scsi0:3.present = \"TRUE\"\n"
		"scsi0:3.fileName = \"b.vmdk\"\n"
		"scsi0:0.fileName = \"iscsi://127.0.0.1/iqn.x/1\"\n"
		"scsi0:0.present = \"true\"\n"
		"scsi0:1.present = \"FALSE\"\n"
		"scsi0:1.fileName = \"unused.img\"\n"
		"serial0.fileName = \"console.log\"\n";
	struct hv_vmx v;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse(text, &v, err), 0);
	assert_string_equal(v.display_name, "web 01");
	assert_int_equal(v.mem_mib, 1024);
	assert_int_equal(v.vcpus, 4);
	assert_string_equal(v.kernel, "/abs/vmlinux");
	assert_string_equal(v.initrd, "/vm/dir/initrd.img");
	assert_string_equal(v.cmdline, "console=ttyS0 vmtest=fill");
	assert_string_equal(v.serial_file, "/vm/dir/console.log");
	/* present disks only, by unit number; specs are not paths */
	assert_int_equal(v.ndisks, 2);
	assert_int_equal(v.disks[0].unit, 0);
	assert_string_equal(v.disks[0].file, "iscsi://127.0.0.1/iqn.x/1");
	assert_int_equal(v.disks[1].unit, 3);
	assert_string_equal(v.disks[1].file, "/vm/dir/b.vmdk");
	hv_vmx_free(&v);
}

/* Each text must be refused with a message containing `want`. */
static void expect_error(const char *text, const char *want)
{
	struct hv_vmx v;
	char err[256] = "";
	int ret = parse(text, &v, err);

	if (ret == 0 || !strstr(err, want)) {
		print_error("text:\n%s\ngot %d \"%s\", want \"%s\"\n", text, ret,
			    err, want);
		fail();
	}
}

static void test_errors(void **state)
{
	(void)state;
	expect_error("boot.kernel = \"k\"\nfoo = \"1\"\n",
		     "line 2: unknown key 'foo'");
	expect_error("memSize = \"64\"\n", "boot.kernel is missing");
	expect_error("boot.kernel = \"k\"\nmemSize = \"0\"\n", "memSize");
	expect_error("boot.kernel = \"k\"\nmemSize = \"99999999\"\n",
		     "line 2: memSize \"99999999\" out of range");
	expect_error("boot.kernel = \"k\"\nmemSize = \"-5\"\n", "out of range");
	expect_error("boot.kernel = \"k\"\nmemSize = \"12abc\"\n", "out of range");
	expect_error("boot.kernel = \"k\"\nmemSize = \"18446744073709551617\"\n",
		     "out of range");
	expect_error("boot.kernel = \"k\"\nnumvcpus = \"0\"\n", "numvcpus");
	expect_error("boot.kernel = \"k\"\nnumvcpus = \"9\"\n", "numvcpus");
	expect_error("boot.kernel = \"k\"\nboot.kernel = \"j\"\n",
		     "line 2: 'boot.kernel' given twice");
	expect_error("boot.kernel = \"k\nx\"\n", "line 1: unterminated");
	expect_error("boot.kernel = \"k\" junk\n", "text after the quoted value");
	expect_error("boot.kernel\n", "line 1: expected key = \"value\"");
	expect_error(" = \"x\"\nboot.kernel = \"k\"\n", "missing key");
	expect_error("boot.kernel = \"k\"\nscsi0:16.present = \"TRUE\"\n",
		     "bad disk key 'scsi0:16.present'");
	expect_error("boot.kernel = \"k\"\nscsi0:x.present = \"TRUE\"\n",
		     "bad disk key");
	expect_error("boot.kernel = \"k\"\nscsi0:0.present = \"maybe\"\n",
		     "TRUE or FALSE");
	expect_error("boot.kernel = \"k\"\nscsi0:2.present = \"TRUE\"\n",
		     "scsi0:2.present is TRUE but fileName is missing");
	expect_error("boot.kernel = \"k\"\nscsi0:0.bogus = \"1\"\n",
		     "unknown key 'scsi0:0.bogus'");
	expect_error("boot.kernel = \"k\"\nscsi0.virtualDev = \"lsilogic\"\n",
		     "not supported");
}

static void test_long_and_binary(void **state)
{
	struct hv_vmx v;
	char err[256] = "", *text = malloc(8192);

	(void)state;
	strcpy(text, "boot.kernel = \"k\"\nboot.cmdline = \"");
	memset(text + strlen(text), 'a', 3000);
	strcpy(text + strlen("boot.kernel = \"k\"\nboot.cmdline = \"") + 3000,
	       "\"\n");
	assert_int_equal(parse(text, &v, err), -EINVAL);
	assert_non_null(strstr(err, "boot.cmdline longer than 2047"));
	free(text);
	assert_int_equal(hv_vmx_parse("boot.kernel = \"k\"\0x", 19, "/d", &v,
				      err, sizeof(err)), -EINVAL);
	assert_non_null(strstr(err, "NUL"));
}

/* Changed-block tracking as ESX turns it on: the VM's ctkEnabled and the
 * disk's scsi0:N.ctkEnabled both TRUE. */
static void test_ctk(void **state)
{
	struct hv_vmx v;
	char err[256] = "";

	(void)state;
	assert_int_equal(parse("boot.kernel = \"k\"\nctkEnabled = \"TRUE\"\n"
			       "scsi0:0.present = \"TRUE\"\n"
			       "scsi0:0.fileName = \"a.vmdk\"\n"
			       "scsi0:0.ctkEnabled = \"TRUE\"\n"
			       "scsi0:1.present = \"TRUE\"\n"
			       "scsi0:1.fileName = \"b.vmdk\"\n"
			       "scsi0:2.present = \"TRUE\"\n"
			       "scsi0:2.fileName = \"c.vmdk\"\n"
			       "scsi0:2.ctkEnabled = \"FALSE\"\n", &v, err), 0);
	assert_int_equal(v.ndisks, 3);
	assert_true(v.disks[0].ctk);
	assert_false(v.disks[1].ctk);
	assert_false(v.disks[2].ctk);
	hv_vmx_free(&v);
	/* the disk's switch alone does nothing */
	assert_int_equal(parse("boot.kernel = \"k\"\n"
			       "scsi0:0.present = \"TRUE\"\n"
			       "scsi0:0.fileName = \"a.vmdk\"\n"
			       "scsi0:0.ctkEnabled = \"TRUE\"\n", &v, err), 0);
	assert_false(v.disks[0].ctk);
	hv_vmx_free(&v);
	assert_int_equal(parse("boot.kernel = \"k\"\nctkEnabled = \"maybe\"\n",
			       &v, err), -EINVAL);
	assert_non_null(strstr(err, "ctkEnabled' must be TRUE or FALSE"));
	assert_int_equal(parse("boot.kernel = \"k\"\nctkEnabled = \"TRUE\"\n"
			       "ctkEnabled = \"TRUE\"\n", &v, err), -EINVAL);
	assert_non_null(strstr(err, "given twice"));
}

static void test_load_missing_files(void **state)
{
	char dir[256], path[300], kpath[300], err[512] = "";
	struct hv_vmx v;
	FILE *f;

	(void)state;
	snprintf(dir, sizeof(dir), "%s/hv-vmx.%d", tu_dir(), (int)getpid());
	assert_int_equal(mkdir(dir, 0700), 0);
	snprintf(path, sizeof(path), "%s/a.vmx", dir);
	snprintf(kpath, sizeof(kpath), "%s/k.elf", dir);

	f = fopen(path, "w");
	fputs("boot.kernel = \"k.elf\"\n", f);
	fclose(f);
	assert_int_equal(hv_vmx_load(path, &v, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "boot.kernel"));
	assert_non_null(strstr(err, "k.elf"));

	f = fopen(kpath, "w");
	fputs("x", f);
	fclose(f);
	f = fopen(path, "w");
	fputs("boot.kernel = \"k.elf\"\nscsi0:0.present = \"TRUE\"\n"
	      "scsi0:0.fileName = \"nope.img\"\n", f);
	fclose(f);
	assert_int_equal(hv_vmx_load(path, &v, err, sizeof(err)), -ENOENT);
	assert_non_null(strstr(err, "scsi0:0.fileName"));
	assert_non_null(strstr(err, "nope.img"));

	f = fopen(path, "w");
	fputs("boot.kernel = \"k.elf\"\n", f);
	fclose(f);
	assert_int_equal(hv_vmx_load(path, &v, err, sizeof(err)), 0);
	assert_string_equal(v.kernel, kpath);
	hv_vmx_free(&v);

	assert_int_equal(hv_vmx_load(dir, &v, err, sizeof(err)), -EINVAL);
	unlink(kpath);
	unlink(path);
	rmdir(dir);
}

int main(void)
{
	const struct CMUnitTest tests[] = {
		cmocka_unit_test(test_minimal_defaults),
		cmocka_unit_test(test_full),
		cmocka_unit_test(test_errors),
		cmocka_unit_test(test_long_and_binary),
		cmocka_unit_test(test_load_missing_files),
		cmocka_unit_test(test_ctk),
	};

	return cmocka_run_group_tests_name("hv_vmx", tests, NULL, NULL);
}
