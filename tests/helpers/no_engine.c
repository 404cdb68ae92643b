/*
 * no_engine - run a program with one of the kernel's asynchronous I/O
 * interfaces switched off, without touching the machine's settings:
 *
 *   no_engine uring PROGRAM [ARGS...]   io_uring_setup() fails with EPERM,
 *                                       as under kernel.io_uring_disabled=2
 *                                       or a container's seccomp profile
 *   no_engine aio PROGRAM [ARGS...]     io_setup() fails with EAGAIN, as
 *                                       when fs.aio-max-nr is used up
 *
 * Lets the tests prove the local backend's fallback between its engines.
 */
#include <errno.h>
#include <linux/audit.h>
#include <linux/filter.h>
#include <linux/seccomp.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>
#include <sys/prctl.h>
#include <sys/syscall.h>
#include <unistd.h>

int main(int argc, char **argv)
{
	unsigned nr, err;

	if (argc < 3 || (strcmp(argv[1], "uring") && strcmp(argv[1], "aio"))) {
		fprintf(stderr, "usage: no_engine uring|aio PROGRAM [ARGS...]\n");
		return 2;
	}
	if (!strcmp(argv[1], "uring")) {
		nr = __NR_io_uring_setup;
		err = EPERM;
	} else {
		nr = __NR_io_setup;
		err = EAGAIN;
	}

	struct sock_filter filter[] = {
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, arch)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, AUDIT_ARCH_X86_64, 1, 0),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
		BPF_STMT(BPF_LD | BPF_W | BPF_ABS,
			 offsetof(struct seccomp_data, nr)),
		BPF_JUMP(BPF_JMP | BPF_JEQ | BPF_K, nr, 0, 1),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ERRNO | (err & SECCOMP_RET_DATA)),
		BPF_STMT(BPF_RET | BPF_K, SECCOMP_RET_ALLOW),
	};
	struct sock_fprog prog = {
		.len = sizeof(filter) / sizeof(filter[0]),
		.filter = filter,
	};

	if (prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) ||
	    prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, &prog)) {
		perror("no_engine: seccomp");
		return 1;
	}
	execvp(argv[2], argv + 2);
	perror(argv[2]);
	return 127;
}
