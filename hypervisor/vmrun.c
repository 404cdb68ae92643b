/*
 * vmrun - run a VM in the foreground: `vmrun start VMX`.
 *
 * Exit status: 0 when the guest powered off or reset, 1 on a VMM error or
 * a bad configuration (with a message naming the problem), 2 on usage.
 * SIGINT/SIGTERM stop the VM (status 1).
 *
 * A VMX on a vmfsd mount is the VM's lock: vmrun keeps it open read-write
 * while the VM runs, so the host's vmfsd holds its on-disk lock; a second
 * start on any host fails, naming the host that runs it.  The kernel
 * closes the file when vmrun ends, however it ends, and the lock goes with
 * it.  Disks on a vmfsd mount are mapped (hypervisor/disk_mapped.c): the
 * host's vmfsd holds their locks for as long as vmrun's connection to it
 * lives, and vmrun does their I/O on the LUNs itself.
 */
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

#include "hypervisor/hv.h"
#include "vmfsd/ctl.h"

static hv_vm *running;
static int fenced;		/* atomic */

/* A mapped disk lost its vmfsd (died, or fenced): no more I/O is safe, the
 * VM powers off with the reason. */
static void on_fence(void *arg, struct hv_disk *disk, const char *why)
{
	hv_vm *vm;

	(void)arg;
	fprintf(stderr, "vmrun: disk %s: %s; stopping the VM (its disks may "
		"belong to another host soon)\n", disk->name, why);
	/* fenced first, running second; cmd_start the other way round: one
	 * of the two sees the other */
	__atomic_store_n(&fenced, 1, __ATOMIC_SEQ_CST);
	vm = __atomic_load_n(&running, __ATOMIC_SEQ_CST);
	if (vm)
		hv_vm_stop(vm);
}

static void on_signal(int sig)
{
	hv_vm *vm = __atomic_load_n(&running, __ATOMIC_SEQ_CST);

	(void)sig;
	if (vm)
		hv_vm_stop(vm);
}

/* The host holding the lock of path (on a vmfsd mount), or "". */
static void holder_of(const char *path, char *who, size_t len)
{
	struct json_object *req, *resp, *hs, *h, *name;
	char msg[256];
	ctl_conn *c;

	who[0] = 0;
	if (ctl_connect(path, &c))
		return;
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("lockinfo"));
	json_object_object_add(req, "path", json_object_new_string(ctl_conn_rel(c)));
	if (!ctl_call(c, req, NULL, NULL, &resp, msg, sizeof(msg))) {
		if (json_object_object_get_ex(resp, "holders", &hs) &&
		    json_object_array_length(hs) > 0 &&
		    (h = json_object_array_get_idx(hs, 0)) &&
		    json_object_object_get_ex(h, "host", &name))
			snprintf(who, len, "%s", json_object_get_string(name));
		json_object_put(resp);
	}
	ctl_close(c);
}

static void busy_msg(const char *what, const char *path)
{
	char who[128];

	holder_of(path, who, sizeof(who));
	if (who[0])
		fprintf(stderr, "vmrun: %s %s is in use by host '%s' (the VM runs "
			"there; vmkfstools -D %s)\n", what, path, who, path);
	else
		fprintf(stderr, "vmrun: %s %s is in use by another host "
			"(vmkfstools -D %s names it)\n", what, path, path);
}

/* On a vmfsd mount: hold the VMX open read-write (the VM's lock).
 * Returns the descriptor, -1 when not on a mount, or -2 (message out). */
static int lock_vmx(const char *path)
{
	char mnt[4096], rel[4096];
	int fd;

	if (ctl_find_mount(path, mnt, sizeof(mnt), rel, sizeof(rel)))
		return -1;
	fd = open(path, O_RDWR | O_CLOEXEC);
	if (fd >= 0)
		return fd;
	if (errno == EBUSY)
		busy_msg("VM", path);
	else
		fprintf(stderr, "vmrun: locking %s: %s\n", path, strerror(errno));
	return -2;
}

/* ctkEnabled and scsi0:N.ctkEnabled: turn the disk's change tracking on
 * (vmfsd's cbt_enable) before it is attached: from then on its descriptor
 * names the tracking file and the mapped disk reports every write. */
static int ctk_enable(unsigned unit, const char *disk)
{
	struct json_object *req, *resp, *o;
	char msg[512];
	ctl_conn *c;
	int ret = ctl_connect(disk, &c);

	if (ret) {
		fprintf(stderr, "vmrun: scsi0:%u: ctkEnabled: %s is not on a "
			"datastore served by vmfsd (%s)\n", unit, disk,
			strerror(-ret));
		return ret;
	}
	req = json_object_new_object();
	json_object_object_add(req, "cmd", json_object_new_string("cbt_enable"));
	json_object_object_add(req, "path", json_object_new_string(ctl_conn_rel(c)));
	ret = ctl_call(c, req, NULL, NULL, &resp, msg, sizeof(msg));
	if (ret) {
		fprintf(stderr, "vmrun: scsi0:%u: turning change tracking on: "
			"%s\n", unit, msg);
	} else {
		if (!json_object_object_get_ex(resp, "already", &o) ||
		    !json_object_get_boolean(o))
			fprintf(stderr, "vmrun: scsi0:%u: change tracking turned "
				"on for %s\n", unit, disk);
		json_object_put(resp);
	}
	ctl_close(c);
	return ret;
}

static int usage(void)
{
	fprintf(stderr, "usage: vmrun start VMX\n");
	return 2;
}

static int cmd_start(const char *path)
{
	struct hv_disk *disks[HV_MAX_DISKS] = { 0 };
	struct sigaction sa = { .sa_handler = on_signal };
	struct hv_vmx vmx;
	char err[512] = "";
	hv_vm *vm = NULL;
	unsigned n = 0;
	int ret, why, status = 1, lockfd;

	lockfd = lock_vmx(path);
	if (lockfd == -2)
		return 1;
	ret = hv_vmx_load(path, &vmx, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "vmrun: %s\n", err);
		if (lockfd >= 0)
			close(lockfd);
		return 1;
	}
	for (n = 0; n < vmx.ndisks; n++) {
		struct hv_disk_opts o = { .fence = on_fence };

		err[0] = 0;
		if (vmx.disks[n].ctk && ctk_enable(vmx.disks[n].unit,
						   vmx.disks[n].file))
			goto out;
		ret = hv_disk_open_opts(vmx.disks[n].file, &o, &disks[n], err,
					sizeof(err));
		if (ret == -EBUSY && !err[0]) {
			busy_msg("disk", vmx.disks[n].file);
			goto out;
		}
		if (ret) {
			fprintf(stderr, "vmrun: scsi0:%u: %s\n",
				vmx.disks[n].unit, err);
			goto out;
		}
	}
	ret = hv_vm_create(&vmx, disks, n, &vm, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "vmrun: %s\n", err);
		goto out;
	}
	__atomic_store_n(&running, vm, __ATOMIC_SEQ_CST);
	if (__atomic_load_n(&fenced, __ATOMIC_SEQ_CST))
		hv_vm_stop(vm);	/* fenced before it ran */
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	why = hv_vm_run(vm);
	__atomic_store_n(&running, NULL, __ATOMIC_SEQ_CST);
	/* the disks' threads end in here: a fence that raced with the
	 * guest's own power-off (after its I/O failed) is seen below */
	hv_vm_destroy(vm);
	vm = NULL;
	if (__atomic_load_n(&fenced, __ATOMIC_SEQ_CST))
		why = HV_EXIT_ERROR;
	fprintf(stderr, "vmrun: %s: %s\n",
		vmx.display_name ? vmx.display_name : path, hv_exit_str(why));
	if (why == HV_EXIT_POWEROFF || why == HV_EXIT_RESET ||
	    why == HV_EXIT_SHUTDOWN)
		status = 0;
out:
	hv_vm_destroy(vm);
	for (unsigned i = 0; i < HV_MAX_DISKS; i++)
		hv_disk_close(disks[i]);	/* those not handed over */
	hv_vmx_free(&vmx);
	if (lockfd >= 0)
		close(lockfd);
	return status;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "start"))
		return cmd_start(argv[2]);
	return usage();
}
