/*
 * vmrun - run a VM in the foreground: `vmrun start VMX`.
 *
 * Exit status: 0 when the guest powered off or reset, 1 on a VMM error or
 * a bad configuration (with a message naming the problem), 2 on usage.
 * SIGINT/SIGTERM stop the VM (status 1).
 */
#include <errno.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>

#include "hypervisor/hv.h"

static hv_vm *running;

static void on_signal(int sig)
{
	(void)sig;
	if (running)
		hv_vm_stop(running);
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
	int ret, why, status = 1;

	ret = hv_vmx_load(path, &vmx, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "vmrun: %s\n", err);
		return 1;
	}
	for (n = 0; n < vmx.ndisks; n++) {
		ret = hv_disk_open(vmx.disks[n].file, false, &disks[n], err,
				   sizeof(err));
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
	running = vm;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	why = hv_vm_run(vm);
	running = NULL;
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
	return status;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "start"))
		return cmd_start(argv[2]);
	return usage();
}
