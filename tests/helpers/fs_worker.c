/*
 * fs_worker - crash tests for the file system, one host per process.
 *
 *   fs_worker run SPEC HOST DIR SEED
 *       mount as HOST, then forever: create a file in DIR with two
 *       writes (the second extends it), fsync; rename one; remove one.
 *       Each operation is printed "DO ..." before it starts and "OK ..."
 *       once it returned: a create once its fsync returned (durable with
 *       everything before it), a rename or unlink at once (acknowledged,
 *       durable only at the next create's fsync: a write-back journal).
 *   fs_worker verify SPEC HOST DIR LOG
 *       mount as another host, take DIR's lock (which recovers a dead
 *       host first: journal replay), and check that DIR holds what LOG's
 *       operations left up to the last fsync'd create, then a prefix of
 *       the later ones (the one in flight at the kill last), whole or not
 *       at all, with every file's contents intact.
 *
 *   fs_worker spanrun HEAD NEW HOST DIR SEED HANG
 *       as run, after filling what extent 0 has free and spanning the
 *       volume onto NEW: the files' blocks go to the new extent.  HANG 1
 *       (NEW a fault: spec): after a few dozen, in-place writes of the new
 *       extent's file block cluster headers hang (inside a transaction,
 *       after its journal commit).
 *   fs_worker spanverify HEAD CAND|- HOST DIR LOG GOFILE
 *       mount HEAD at once, without a janitor, CAND a candidate device;
 *       once GOFILE exists, as verify (the dead host's journal changes an
 *       extent this host has not seen yet).  Exit 3: recovery failed.
 *
 *   fs_worker free SPEC HOST NAME MIB orphan|truncate
 *       write NAME, then leave its blocks to be freed by whoever deals
 *       with this host's crash: as an orphan, or in a truncate committed
 *       to the journal but not in place (see cmd_free).
 *   fs_worker recover SPEC HOST
 *       recover every dead host and free their orphans.
 *
 *   fs_worker disk SPEC HOST NAME SEED
 *       mount as HOST, create NAME (64 MiB: the first half a hole, the
 *       second reserved "to be zeroed", as thin and zeroedthick disks),
 *       then forever: sequential runs of 1 MiB writes, scattered 4 KiB
 *       writes, fsync.  Each write is logged "DO W SECTOR COUNT GEN"
 *       before it starts, "OK SYNC" once an fsync after it returned.
 *   fs_worker diskverify SPEC HOST NAME LOG
 *       mount as another host, open NAME (waiting for the dead host's
 *       lock: recovery), and check every sector: it holds what the last
 *       write acknowledged by an fsync put there, or what a later write
 *       put there; never older data, zeros where data was acknowledged,
 *       or anything else.
 *
 * File contents: tu-style pattern of the file's seed; size in the name's
 * log line.  Disk sectors: (sector, generation) then a pattern of both.
 * Exit 0 ok, 1 error, 2 check failed.
 */
#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "fs/fs_int.h"

#define MAXF 100000
#define LIVEF 200

static void fill(unsigned char *b, size_t len, uint32_t seed, uint64_t off)
{
	for (size_t i = 0; i < len; i++) {
		uint64_t x = (off + i) * 0x9E3779B97F4A7C15ull ^ seed;

		x ^= x >> 29;
		b[i] = (unsigned char)(x * 0xBF58476D1CE4E5B9ull >> 56);
	}
}

static fs_vol *mount1(const char *spec, const char *host)
{
	const char *specs[1] = { spec };
	struct fs_mount_opts mo = { .host = host };
	fs_vol *v;
	int ret = fs_mount(specs, 1, &mo, &v);

	if (ret) {
		fprintf(stderr, "fs_worker: mount: %s\n", fs_strerror(ret));
		exit(1);
	}
	return v;
}

static uint64_t dir_of(fs_vol *v, const char *name, int create)
{
	struct fs_create_args a = { .type = FS_TYPE_DIR, .mode = 0755 };
	struct fs_stat st;
	int ret = fs_lookup(v, fs_root(v), name, &st);

	if (ret == -ENOENT && create)
		ret = fs_create(v, fs_root(v), name, &a, &st);
	if (ret == -EEXIST)
		ret = fs_lookup(v, fs_root(v), name, &st);
	if (ret) {
		fprintf(stderr, "fs_worker: dir %s: %s\n", name, fs_strerror(ret));
		exit(1);
	}
	return st.ino;
}

/* The create / rename / unlink workload in dir, forever. */
static int workload(fs_vol *v, uint64_t dir, unsigned seed)
{
	char (*names)[32] = calloc(MAXF, 32);
	unsigned n = 0, k = 0;

	srand(seed);
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("READY\n");
	for (;;) {
		int op = rand() % 6;

		/* at most LIVEF files at once: a fast run must not use up
		 * the small test volumes' descriptors before its kill */
		if (n >= LIVEF && op < 3)
			op = 5;
		if (op < 3 || n < 3) {
			struct fs_create_args a = { .type = FS_TYPE_FILE, .mode = 0644 };
			uint32_t fseed = (uint32_t)rand();
			size_t size = 1 + (size_t)rand() % (300 << 10), half = size / 2;
			unsigned char *b = malloc(size);
			struct fs_stat st;
			fs_file *f;
			int ret;

			snprintf(names[n], 32, "f%u", k++);
			printf("DO CREATE %s\n", names[n]);
			fill(b, size, fseed, 0);
			ret = fs_create(v, dir, names[n], &a, &st);
			if (!ret)
				ret = fs_open(v, st.ino, FS_O_RDWR, &f);
			if (ret) {
				fprintf(stderr, "create: %s\n", fs_strerror(ret));
				return 1;
			}
			ssize_t w1 = fs_pwrite(f, b, half, 0), w2 = 0;
			int rs = 0, rc = 0;

			if (w1 == (ssize_t)half)
				w2 = fs_pwrite(f, b + half, size - half, half);
			if (w1 == (ssize_t)half && w2 == (ssize_t)(size - half))
				rs = fs_fsync(f);
			rc = fs_close(f);
			if (w1 != (ssize_t)half || w2 != (ssize_t)(size - half) ||
			    rs || rc) {
				fprintf(stderr, "write failed: %s (%zu bytes): "
					"write %zd, write %zd, fsync %s, close %s\n",
					names[n], size, w1, w2, fs_strerror(rs),
					fs_strerror(rc));
				return 1;
			}
			free(b);
			printf("OK CREATE %s %zu %u\n", names[n], size, fseed);
			n++;
		} else if (op < 5) {
			unsigned i = (unsigned)rand() % n;
			char nn[32];
			int ret;

			snprintf(nn, sizeof(nn), "r%u", k++);
			printf("DO RENAME %s %s\n", names[i], nn);
			ret = fs_rename(v, dir, names[i], dir, nn, 0);
			if (ret) {
				fprintf(stderr, "rename: %s\n", fs_strerror(ret));
				return 1;
			}
			printf("OK RENAME %s %s\n", names[i], nn);
			strcpy(names[i], nn);
		} else {
			unsigned i = (unsigned)rand() % n;
			int ret;

			printf("DO UNLINK %s\n", names[i]);
			ret = fs_unlink(v, dir, names[i]);

			if (ret) {
				fprintf(stderr, "unlink: %s\n", fs_strerror(ret));
				return 1;
			}
			printf("OK UNLINK %s\n", names[i]);
			memmove(names[i], names[n - 1], 32);
			n--;
		}
		if (n >= MAXF - 1)
			break;
	}
	fs_umount(v);
	return 0;
}

static int cmd_run(const char *spec, const char *host, const char *dname,
		   unsigned seed)
{
	fs_vol *v = mount1(spec, host);

	return workload(v, dir_of(v, dname, 1), seed);
}

/*
 * Mount HEAD, fill what extent 0 has free with a reserved file, span the
 * volume onto NEW, then the workload: its files' blocks land on the new
 * extent.
 */
static int cmd_spanrun(const char *head, const char *new, const char *host,
		       const char *dname, unsigned seed, int hang)
{
	struct fs_create_args a = { .type = FS_TYPE_FILE, .mode = 0644 };
	fs_vol *v = mount1(head, host);
	uint64_t dir = dir_of(v, dname, 1);
	struct fs_vol_info in;
	struct fs_stat st;
	char err[256];
	fs_file *f;
	int ret;

	ret = fs_vol_info(v, &in);
	if (!ret)
		ret = fs_create(v, fs_root(v), "ballast", &a, &st);
	if (!ret)
		ret = fs_open(v, st.ino, FS_O_RDWR, &f);
	if (!ret) {
		ret = fs_fallocate(f, 0, in.free - 4ull * in.block_size, false);
		if (!ret)
			ret = fs_close(f);
	}
	if (ret) {
		fprintf(stderr, "fs_worker: ballast: %s\n", fs_strerror(ret));
		return 1;
	}
	ret = fs_vol_span(v, new, err, sizeof(err));
	if (ret) {
		fprintf(stderr, "fs_worker: span: %s\n", err);
		return 1;
	}
	if (hang) {
		/* NEW is fault::...: a later transaction hangs writing a file
		 * block cluster header of the new extent in place, after its
		 * journal commit (so that only replay can put it there) */
		const struct fs_area *fa = &v->sb.ext[1].area[FS_A_FB];
		struct mp_fault_rule r = { .op = MP_OP_WRITE,
					   .action = MP_FAULT_HANG };

		srand(seed);
		r.off = fa->meta_off;
		r.len = (uint64_t)fa->clusters * FS_SLOT;
		r.minlen = FS_BLOCK;    /* headers, not the lock records */
		r.after = 20 + (unsigned)rand() % 40;
		ret = mp_fault_add(v->ext[1].lun, &r);
		if (ret < 0) {
			fprintf(stderr, "fs_worker: fault rule: %s\n",
				fs_strerror(ret));
			return 1;
		}
	}
	return workload(v, dir, seed);
}

struct expect {
	char name[32];
	size_t size;
	uint32_t seed;
	int seen;
	bool partial;            /* created in flight: any contents */
};

static struct expect *ex;
static unsigned nex;

static struct expect *find(const char *name)
{
	for (unsigned i = 0; i < nex; i++)
		if (!strcmp(ex[i].name, name))
			return &ex[i];
	return NULL;
}

struct seen_ctx {
	fs_vol *v;
	unsigned far;            /* files with blocks beyond extent 0 */
	unsigned extra;
	char extra_name[32];
	int bad;
};

static int check_one(void *arg, const char *name, uint64_t ino, uint8_t type)
{
	struct seen_ctx *c = arg;
	struct expect *e = find(name);
	unsigned char *want, *got;
	fs_file *f;
	ssize_t n;

	if (!e) {
		c->extra++;
		snprintf(c->extra_name, sizeof(c->extra_name), "%s", name);
		return 0;
	}
	e->seen = 1;
	if (e->partial)
		return 0;               /* created in flight: any contents */
	if (fs_open(c->v, ino, FS_O_RDONLY, &f)) {
		printf("cannot open %s\n", name);
		c->bad = 1;
		return 0;
	}
	want = malloc(e->size);
	got = malloc(e->size + 1);
	fill(want, e->size, e->seed, 0);
	n = fs_pread(f, got, e->size + 1, 0);
	if (n != (ssize_t)e->size || memcmp(want, got, e->size)) {
		printf("%s: %zd bytes, expected %zu, %s\n", name, n, e->size,
		       n == (ssize_t)e->size ? "contents differ" : "size differs");
		c->bad = 1;
	}
	{
		struct fs_map_ext m[64];
		unsigned nm = 0;

		if (fs_map(f, 0, e->size, m, 64, &nm) == 0 || nm == 64)
			for (unsigned i = 0; i < nm; i++)
				if (m[i].state != FS_MAP_EXT_HOLE && m[i].ext) {
					c->far++;
					break;
				}
	}
	fs_close(f);
	free(want);
	free(got);
	(void)type;
	return 0;
}

/* The log's operations in order; ok: acknowledged (an "OK" line). */
struct logop {
	char kind;               /* C(reate), R(ename), U(nlink) */
	char a[32], b[32];
	size_t size;
	uint32_t seed;
	bool ok;
};

static struct logop *ops;
static unsigned nops;
static int last_sync = -1;       /* the last create acknowledged (fsync'd) */

static void apply(const struct logop *o)
{
	struct expect *e;

	switch (o->kind) {
	case 'C':
		if (find(o->a))
			break;
		e = &ex[nex++];
		memset(e, 0, sizeof(*e));
		snprintf(e->name, 32, "%s", o->a);
		e->size = o->size;
		e->seed = o->seed;
		e->partial = !o->ok;
		break;
	case 'R':
		if ((e = find(o->a)))
			snprintf(e->name, 32, "%s", o->b);
		break;
	case 'U':
		if ((e = find(o->a)))
			*e = ex[--nex];
		break;
	}
}

/* The model (ex, nex) after every operation up to the last fsync'd
 * create, then k more in the order they were made. */
static void model(unsigned k)
{
	nex = 0;
	for (unsigned i = 0; i < nops && (int)i <= last_sync + (int)k; i++)
		apply(&ops[i]);
	for (unsigned i = 0; i < nex; i++)
		ex[i].seen = 0;
}

static int load_log(const char *log)
{
	FILE *lf = fopen(log, "r");
	char line[256], a[64], b[64];
	size_t size;
	unsigned seed;

	if (!lf) {
		perror(log);
		return 1;
	}
	ex = calloc(MAXF, sizeof(*ex));
	ops = calloc(4 * MAXF, sizeof(*ops));
	while (fgets(line, sizeof(line), lf) && nops < 4 * MAXF) {
		struct logop *o = &ops[nops];

		if (sscanf(line, "DO CREATE %63s", a) == 1) {
			o->kind = 'C';
			snprintf(o->a, 32, "%.31s", a);
			nops++;
		} else if (sscanf(line, "DO RENAME %63s %63s", a, b) == 2) {
			o->kind = 'R';
			snprintf(o->a, 32, "%.31s", a);
			snprintf(o->b, 32, "%.31s", b);
			nops++;
		} else if (sscanf(line, "DO UNLINK %63s", a) == 1) {
			o->kind = 'U';
			snprintf(o->a, 32, "%.31s", a);
			nops++;
		} else if (nops && !strncmp(line, "OK ", 3)) {
			o = &ops[nops - 1];
			o->ok = true;
			if (sscanf(line, "OK CREATE %63s %zu %u", a, &size,
				   &seed) == 3) {
				o->size = size;
				o->seed = seed;
				last_sync = (int)nops - 1;
			}
		}
	}
	fclose(lf);
	return 0;
}

/* Names seen in the directory (the probe left out). */
struct names {
	char (*n)[32];
	unsigned count;
};

static int collect(void *arg, const char *name, uint64_t ino, uint8_t type)
{
	struct names *c = arg;

	(void)ino;
	(void)type;
	if (strcmp(name, "probe") && c->count < MAXF)
		snprintf(c->n[c->count++], 32, "%s", name);
	return 0;
}

/* Whether the model's names are exactly those seen. */
static bool model_is(const struct names *c)
{
	if (c->count != nex)
		return false;
	for (unsigned i = 0; i < c->count; i++)
		if (!find(c->n[i]))
			return false;
	return true;
}

/* Recover the dead host (through DIR's lock, then any left) and check DIR
 * against the log loaded; unmounts v.  Exit 3: recovery failed. */
static int verify_mounted(fs_vol *v, const char *dname)
{
	struct fs_create_args pa = { .type = FS_TYPE_FILE, .mode = 0644 };
	struct fs_stat st;
	struct seen_ctx c = { 0 };
	struct names seen = { 0 };
	struct timespec t0, t1;
	unsigned missing = 0, later, acked = 0;
	uint64_t dir;
	int k, ret;

	dir = dir_of(v, dname, 0);
	/* creating in the directory needs its lock: if the dead host held
	 * it, this waits for it to be dead and recovers it first */
	clock_gettime(CLOCK_MONOTONIC, &t0);
	ret = fs_create(v, dir, "probe", &pa, &st);
	if (!ret)
		ret = fs_unlink(v, dir, "probe");
	clock_gettime(CLOCK_MONOTONIC, &t1);
	if (ret) {
		fprintf(stderr, "probe: %s\n", fs_strerror(ret));
		return 3;
	}
	printf("directory lock obtained after %.1f s\n",
	       (double)(t1.tv_sec - t0.tv_sec) + (t1.tv_nsec - t0.tv_nsec) / 1e9);
	{
		unsigned nrec = 0;

		/* hosts that died holding nothing we needed: recover them too,
		 * so that the volume is clean for fsck afterwards */
		ret = lk_recover_dead(fs_lk(v), &nrec);
		if (ret) {
			fprintf(stderr, "recovering dead hosts: %s\n", fs_strerror(ret));
			return 3;
		}
		printf("%u more dead host(s) recovered\n", nrec);
	}
	seen.n = calloc(MAXF, 32);
	if (!seen.n)
		return 1;
	ret = fs_readdir(v, dir, collect, &seen);
	if (ret) {
		fprintf(stderr, "readdir: %s\n", fs_strerror(ret));
		return 1;
	}
	/* which prefix of the operations after the last fsync survived:
	 * each whole or not at all, none after one that did not */
	later = nops - (unsigned)(last_sync + 1);
	for (unsigned i = (unsigned)(last_sync + 1); i < nops; i++)
		acked += ops[i].ok;
	for (k = (int)later; k >= 0; k--) {
		model((unsigned)k);
		if (model_is(&seen))
			break;
	}
	printf("after the last fsync: %u operation(s) acknowledged, %u in "
	       "flight; ", acked, later - acked);
	if (k < 0) {
		/* none fits: compare with what was fsync'd */
		model(0);
		printf("no prefix of them matches the directory\n");
	} else {
		printf("the first %d of them survived\n", k);
	}
	c.v = v;
	ret = fs_readdir(v, dir, check_one, &c);
	if (ret) {
		fprintf(stderr, "readdir: %s\n", fs_strerror(ret));
		return 1;
	}
	for (unsigned i = 0; i < nex; i++) {
		if (!ex[i].seen) {
			missing++;
			printf("missing: %s\n", ex[i].name);
		}
	}
	printf("%u files checked, %u with blocks beyond extent 0, %u missing, "
	       "%u unexpected%s%s\n", nex, c.far, missing, c.extra,
	       c.extra ? " (" : "", c.extra ? c.extra_name : "");
	if (c.extra)
		printf(")\n");
	fs_umount(v);
	free(seen.n);
	return c.bad || k < 0 || missing || c.extra ? 2 : 0;
}

static int cmd_verify(const char *spec, const char *host, const char *dname,
		      const char *log)
{
	if (load_log(log))
		return 1;
	return verify_mounted(mount1(spec, host), dname);
}

/*
 * Mount HEAD now, without a janitor (so that this host does not read the
 * superblock again by itself), with CAND as a candidate device ("-":
 * none); once GOFILE exists (the other host spanned the volume and was
 * killed), recover it and verify as cmd_verify.
 */
static int cmd_spanverify(const char *head, const char *cand, const char *host,
			  const char *dname, const char *log, const char *go)
{
	const char *specs[1] = { head }, *cands[1] = { cand };
	struct fs_mount_opts mo = { .host = host, .no_janitor = true,
				    .candidates = cands,
				    .ncandidates = strcmp(cand, "-") ? 1 : 0 };
	fs_vol *v;
	int ret = fs_mount(specs, 1, &mo, &v);

	if (ret) {
		fprintf(stderr, "fs_worker: mount: %s\n", fs_strerror(ret));
		return 1;
	}
	setvbuf(stdout, NULL, _IOLBF, 0);
	printf("READY (%u extent%s)\n", v->next, v->next == 1 ? "" : "s");
	while (access(go, F_OK))
		usleep(50000);
	if (load_log(log))
		return 1;
	/* before anything is read: a file or directory mapping blocks on
	 * the new extent would make this host refresh by itself */
	{
		unsigned nrec = 0;

		ret = lk_recover_dead(fs_lk(v), &nrec);
		if (ret) {
			fprintf(stderr, "recovering the dead host: %s\n",
				fs_strerror(ret));
			return 3;
		}
		printf("%u dead host(s) recovered before anything was read\n",
		       nrec);
	}
	return verify_mounted(v, dname);
}

/* ---- frees a crash leaves to others (free, recover) ------------------------ */

/*
 * Mount SPEC, write MIB MiB into a new file NAME, fsync; then, by MODE:
 *   orphan:   unlink it while open (an orphan on this host's list);
 *   truncate: SPEC is fault:...: make writes of file block cluster headers
 *             in place hang, truncate the file to 0 and fsync it (a
 *             transaction that frees the blocks, in the journal, not in
 *             place).
 * "READY" once that is done or hanging; then wait to be killed.
 */
static int cmd_free(const char *spec, const char *host, const char *name,
		    unsigned mib, const char *mode)
{
	struct fs_create_args a = { .type = FS_TYPE_FILE, .mode = 0644 };
	fs_vol *v = mount1(spec, host);
	size_t len = 1 << 20;
	unsigned char *b = malloc(len);
	struct fs_stat st;
	fs_file *f;
	int ret;

	setvbuf(stdout, NULL, _IOLBF, 0);
	ret = fs_create(v, fs_root(v), name, &a, &st);
	if (!ret)
		ret = fs_open(v, st.ino, FS_O_RDWR, &f);
	for (unsigned i = 0; !ret && i < mib; i++) {
		fill(b, len, i, (uint64_t)i * len);
		if (fs_pwrite(f, b, len, (uint64_t)i * len) != (ssize_t)len)
			ret = -EIO;
	}
	if (!ret)
		ret = fs_fsync(f);
	if (ret) {
		fprintf(stderr, "fs_worker: writing %s: %s\n", name, fs_strerror(ret));
		return 1;
	}
	printf("WRITTEN %u MiB\n", mib);
	if (!strcmp(mode, "orphan")) {
		ret = fs_unlink(v, fs_root(v), name);
		/* durable (write-back journal): the host dies with the
		 * file an orphan */
		if (!ret)
			ret = fs_sync(v);
		if (ret) {
			fprintf(stderr, "fs_worker: unlink: %s\n", fs_strerror(ret));
			return 1;
		}
		printf("READY\n");
	} else {
		const struct fs_area *fa = &v->sb.ext[0].area[FS_A_FB];
		struct mp_fault_rule r = { .op = MP_OP_WRITE,
					   .action = MP_FAULT_HANG };

		r.off = fa->meta_off;
		r.len = (uint64_t)fa->clusters * FS_SLOT;
		r.minlen = FS_BLOCK;    /* headers, not the lock records */
		ret = mp_fault_add(v->ext[0].lun, &r);
		if (ret < 0) {
			fprintf(stderr, "fs_worker: fault rule: %s\n",
				fs_strerror(ret));
			return 1;
		}
		printf("READY\n");
		/* acknowledged at once (write-back); its fsync hangs after
		 * the journal has it */
		ret = fs_ftruncate(f, 0);
		if (!ret)
			ret = fs_fsync(f);
		fprintf(stderr, "fs_worker: the truncate and its fsync returned: "
			"%s\n", fs_strerror(ret));
		return 1;
	}
	for (;;)
		pause();
}

/* Mount SPEC as HOST, recover every dead host and free the orphans they
 * left (the janitor's work), then unmount. */
static int cmd_recover(const char *spec, const char *host)
{
	fs_vol *v = mount1(spec, host);
	unsigned nrec = 0, left = 1;
	int ret = lk_recover_dead(fs_lk(v), &nrec);

	if (ret) {
		fprintf(stderr, "fs_worker: recovering: %s\n", fs_strerror(ret));
		return 1;
	}
	for (int i = 0; i < 200 && left; i++) {
		pthread_mutex_lock(&v->orphan_lock);
		left = v->npending;
		pthread_mutex_unlock(&v->orphan_lock);
		if (left)
			usleep(100000);
	}
	printf("%u dead host(s) recovered, %u orphan(s) left\n", nrec, left);
	fs_umount(v);
	return left ? 1 : 0;
}

/* ---- a virtual disk's writes (disk, diskverify) ---------------------------- */

#define DISK_SIZE (64ull << 20)
#define DISK_SECTORS (DISK_SIZE / 512)

static void sector_fill(unsigned char *b, uint64_t sector, uint32_t gen)
{
	memcpy(b, &sector, 8);
	memcpy(b + 8, &gen, 4);
	fill(b + 12, 500, gen, sector * 512);
}

/* The generation a sector holds (0: zeros), or -1 for anything else. */
static int64_t sector_gen(const unsigned char *b, uint64_t sector)
{
	unsigned char want[512];
	uint64_t s;
	uint32_t gen;
	size_t i;

	for (i = 0; i < 512 && !b[i]; i++)
		;
	if (i == 512)
		return 0;
	memcpy(&s, b, 8);
	memcpy(&gen, b + 8, 4);
	if (s != sector || !gen)
		return -1;
	sector_fill(want, sector, gen);
	return memcmp(want, b, 512) ? -1 : (int64_t)gen;
}

static fs_file *disk_open(fs_vol *v, const char *name, bool create)
{
	struct fs_create_args a = { .type = FS_TYPE_FILE, .mode = 0644 };
	struct fs_stat st;
	fs_file *f = NULL;
	int ret = fs_lookup(v, fs_root(v), name, &st);

	if (ret == -ENOENT && create)
		ret = fs_create(v, fs_root(v), name, &a, &st);
	/* a dead host's lock: the open waits, and recovers it once dead */
	for (int i = 0; !ret && i < 10; i++) {
		ret = fs_open(v, st.ino, FS_O_RDWR, &f);
		if (ret != -EBUSY)
			break;
	}
	if (!ret && create)
		ret = fs_ftruncate(f, DISK_SIZE);
	if (!ret && create)
		ret = fs_fallocate(f, DISK_SIZE / 2, DISK_SIZE / 2, true);
	if (ret) {
		fprintf(stderr, "fs_worker: disk %s: %s\n", name, fs_strerror(ret));
		exit(1);
	}
	return f;
}

static int cmd_disk(const char *spec, const char *host, const char *name,
		    unsigned seed)
{
	fs_vol *v = mount1(spec, host);
	fs_file *f = disk_open(v, name, true);
	unsigned char *b = malloc(1 << 20);
	uint32_t gen = 0;

	srand(seed);
	setvbuf(stdout, NULL, _IOLBF, 0);
	if (fs_fsync(f))
		return 1;
	printf("READY\n");
	for (;;) {
		int op = rand() % 8;

		if (op < 3) {
			/* a sequential run of 1 MiB writes */
			uint64_t u = (uint64_t)rand() % 64, n = 1 + rand() % 12;

			for (uint64_t k = 0; k < n && u + k < 64; k++) {
				uint64_t s0 = (u + k) * 2048;

				gen++;
				for (unsigned i = 0; i < 2048; i++)
					sector_fill(b + i * 512, s0 + i, gen);
				printf("DO W %llu 2048 %u\n", (unsigned long long)s0, gen);
				if (fs_pwrite(f, b, 1 << 20, s0 * 512) != 1 << 20) {
					fprintf(stderr, "write failed\n");
					return 1;
				}
			}
		} else if (op < 7) {
			/* scattered 4 KiB writes */
			for (int k = 0; k < 8; k++) {
				uint64_t s0 = ((uint64_t)rand() % (DISK_SECTORS / 8)) * 8;

				gen++;
				for (unsigned i = 0; i < 8; i++)
					sector_fill(b + i * 512, s0 + i, gen);
				printf("DO W %llu 8 %u\n", (unsigned long long)s0, gen);
				if (fs_pwrite(f, b, 4096, s0 * 512) != 4096) {
					fprintf(stderr, "write failed\n");
					return 1;
				}
			}
		} else {
			if (fs_fsync(f)) {
				fprintf(stderr, "fsync failed\n");
				return 1;
			}
			printf("OK SYNC\n");
		}
	}
}

static int cmd_diskverify(const char *spec, const char *host, const char *name,
			  const char *log)
{
	uint32_t *acked = calloc(DISK_SECTORS, 4), *last = calloc(DISK_SECTORS, 4);
	unsigned char *b = malloc(1 << 20);
	unsigned long long s0, n;
	unsigned gen, bad = 0, newer = 0, kept = 0, syncs = 0;
	FILE *lf = fopen(log, "r");
	uint64_t *touched = NULL;
	size_t ntouched = 0, cap = 0;
	char line[256];
	fs_vol *v;
	fs_file *f;

	if (!lf) {
		perror(log);
		return 1;
	}
	/* last: the newest generation written to each sector; acked: the
	 * newest one an fsync covered */
	while (fgets(line, sizeof(line), lf)) {
		if (sscanf(line, "DO W %llu %llu %u", &s0, &n, &gen) == 3 &&
		    s0 + n <= DISK_SECTORS) {
			for (uint64_t s = s0; s < s0 + n; s++)
				last[s] = gen;
			if (ntouched == cap) {
				cap = cap ? 2 * cap : 1024;
				touched = realloc(touched, cap * sizeof(*touched));
			}
			touched[ntouched++] = s0 << 16 | n;
		} else if (!strncmp(line, "OK SYNC", 7)) {
			for (size_t i = 0; i < ntouched; i++)
				for (uint64_t s = touched[i] >> 16;
				     s < (touched[i] >> 16) + (touched[i] & 0xffff); s++)
					acked[s] = last[s];
			ntouched = 0;
			syncs++;
		}
	}
	fclose(lf);
	v = mount1(spec, host);
	f = disk_open(v, name, false);
	for (uint64_t s = 0; s < DISK_SECTORS; s += 2048) {
		if (fs_pread(f, b, 1 << 20, s * 512) != 1 << 20) {
			fprintf(stderr, "read failed\n");
			return 1;
		}
		for (unsigned i = 0; i < 2048; i++) {
			int64_t g = sector_gen(b + i * 512, s + i);

			if (g >= 0 && (uint32_t)g == acked[s + i]) {
				kept++;
				continue;
			}
			if (g > acked[s + i] && g <= last[s + i]) {
				newer++;     /* written after the last fsync: may be */
				continue;
			}
			if (bad++ < 10)
				printf("sector %llu: %s %lld, acknowledged %u, last written %u\n",
				       (unsigned long long)(s + i),
				       g < 0 ? "garbage, not a generation" : "generation",
				       (long long)g, acked[s + i], last[s + i]);
		}
	}
	printf("%u syncs acknowledged; sectors: %u as acknowledged, %u newer "
	       "(unacknowledged writes that landed), %u bad\n",
	       syncs, kept, newer, bad);
	fs_close(f);
	{
		unsigned nrec = 0;

		if (lk_recover_dead(fs_lk(v), &nrec))
			return 1;
	}
	fs_umount(v);
	return bad ? 2 : 0;
}

/* Where the FD slots of extent 0 are (for a fault rule that stops a host
 * inside a transaction: FD blocks are only ever written in place). */
static int cmd_fdarea(const char *spec)
{
	const char *specs[1] = { spec };
	struct fs_mount_opts mo = { .read_only = true, .host = "probe" };
	const struct fs_area *a;
	fs_vol *v;
	int ret = fs_mount(specs, 1, &mo, &v);

	if (ret) {
		fprintf(stderr, "fs_worker: %s\n", fs_strerror(ret));
		return 1;
	}
	a = &v->sb.ext[0].area[FS_A_FD];
	printf("%llu %llu\n", (unsigned long long)a->res_off,
	       (unsigned long long)a->clusters * a->per_cluster * FS_SLOT);
	fs_umount(v);
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 3 && !strcmp(argv[1], "fdarea"))
		return cmd_fdarea(argv[2]);
	if (argc == 6 && !strcmp(argv[1], "run"))
		return cmd_run(argv[2], argv[3], argv[4], (unsigned)atoi(argv[5]));
	if (argc == 6 && !strcmp(argv[1], "verify"))
		return cmd_verify(argv[2], argv[3], argv[4], argv[5]);
	if (argc == 7 && !strcmp(argv[1], "free"))
		return cmd_free(argv[2], argv[3], argv[4], (unsigned)atoi(argv[5]),
				argv[6]);
	if (argc == 4 && !strcmp(argv[1], "recover"))
		return cmd_recover(argv[2], argv[3]);
	if (argc == 8 && !strcmp(argv[1], "spanrun"))
		return cmd_spanrun(argv[2], argv[3], argv[4], argv[5],
				   (unsigned)atoi(argv[6]), atoi(argv[7]));
	if (argc == 8 && !strcmp(argv[1], "spanverify"))
		return cmd_spanverify(argv[2], argv[3], argv[4], argv[5], argv[6],
				      argv[7]);
	if (argc == 6 && !strcmp(argv[1], "disk"))
		return cmd_disk(argv[2], argv[3], argv[4], (unsigned)atoi(argv[5]));
	if (argc == 6 && !strcmp(argv[1], "diskverify"))
		return cmd_diskverify(argv[2], argv[3], argv[4], argv[5]);
	fprintf(stderr, "usage: fs_worker run SPEC HOST DIR SEED\n"
			"       fs_worker verify SPEC HOST DIR LOG\n"
			"       fs_worker spanrun HEAD NEW HOST DIR SEED HANG\n"
			"       fs_worker free SPEC HOST NAME MIB orphan|truncate\n"
			"       fs_worker recover SPEC HOST\n"
			"       fs_worker spanverify HEAD CAND|- HOST DIR LOG GOFILE\n"
			"       fs_worker disk SPEC HOST NAME SEED\n"
			"       fs_worker diskverify SPEC HOST NAME LOG\n");
	return 1;
}
