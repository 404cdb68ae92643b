/*
 * vmx.c - the .vmx configuration file: VMware's syntax (key = "value", one
 * per line, # comments, keys case-insensitive), the subset of keys vmrun
 * understands, and nothing else: an unknown or repeated key is an error
 * rather than a silently ignored setting.
 */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <libgen.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "hypervisor/hv.h"

/* Keys VMware writes that mean nothing to a directly booted VM. */
static const char *const ignored_keys[] = {
	".encoding", "config.version", "virtualHW.version", "guestOS",
	"annotation", "scsi0.present", "serial0.present", NULL,
};

#define SEEN_NAME	0x01
#define SEEN_MEM	0x02
#define SEEN_VCPUS	0x04
#define SEEN_KERNEL	0x08
#define SEEN_INITRD	0x10
#define SEEN_CMDLINE	0x20
#define SEEN_SERIAL	0x40
#define SEEN_VDEV	0x80
#define SEEN_CTK	0x100

struct disk_slot {
	int present;		/* -1 unset, 0 FALSE, 1 TRUE */
	int ctk;		/* ctkEnabled: -1 unset, 0, 1 */
	char *file;
};

static int fail(char *err, size_t errlen, unsigned line, const char *fmt,
		const char *arg)
{
	char msg[256];

	snprintf(msg, sizeof(msg), fmt, arg);
	if (line)
		snprintf(err, errlen, "line %u: %s", line, msg);
	else
		snprintf(err, errlen, "%s", msg);
	return -EINVAL;
}

static char *resolve(const char *dir, const char *v)
{
	char *p;

	/* absolute paths and device-layer specs stay as they are */
	if (v[0] == '/' || strstr(v, "://") || !strncmp(v, "fault:", 6) ||
	    !dir || !*dir)
		return strdup(v);
	if (asprintf(&p, "%s/%s", dir, v) < 0)
		return NULL;
	return p;
}

static int parse_uint(const char *v, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long n;

	if (!isdigit((unsigned char)v[0]))
		return -EINVAL;
	errno = 0;
	n = strtoull(v, &end, 10);
	if (errno || *end || n > max)
		return -EINVAL;
	*out = n;
	return 0;
}

static int parse_bool(const char *v)
{
	if (!strcasecmp(v, "TRUE") || !strcasecmp(v, "yes") || !strcmp(v, "1"))
		return 1;
	if (!strcasecmp(v, "FALSE") || !strcasecmp(v, "no") || !strcmp(v, "0"))
		return 0;
	return -1;
}

/* Split one line into key and value (in place).  1 = pair, 0 = blank. */
static int split(char *s, char **key, char **val, const char **why)
{
	char *eq, *e;

	while (isspace((unsigned char)*s))
		s++;
	if (!*s || *s == '#')
		return 0;
	eq = strchr(s, '=');
	if (!eq) {
		*why = "expected key = \"value\"";
		return -1;
	}
	for (e = eq; e > s && isspace((unsigned char)e[-1]); e--)
		;
	*e = 0;
	*key = s;
	if (!**key) {
		*why = "missing key";
		return -1;
	}
	for (char *k = s; *k; k++) {
		if (!isalnum((unsigned char)*k) && !strchr(".:_-", *k)) {
			*why = "bad character in key";
			return -1;
		}
	}
	s = eq + 1;
	while (isspace((unsigned char)*s))
		s++;
	if (*s == '"') {
		char *q = strchr(s + 1, '"');

		if (!q) {
			*why = "unterminated quoted value";
			return -1;
		}
		*q = 0;
		*val = s + 1;
		for (q++; isspace((unsigned char)*q); q++)
			;
		if (*q && *q != '#') {
			*why = "text after the quoted value";
			return -1;
		}
	} else {
		/* unquoted: up to a comment or the end, trimmed */
		*val = s;
		e = strchr(s, '#');
		if (e)
			*e = 0;
		for (e = s + strlen(s); e > s && isspace((unsigned char)e[-1]); e--)
			;
		*e = 0;
	}
	return 1;
}

static int set_str(char **dst, unsigned *seen, unsigned bit, const char *v)
{
	if (*seen & bit)
		return -EEXIST;
	*seen |= bit;
	*dst = strdup(v);
	return *dst ? 0 : -ENOMEM;
}

int hv_vmx_parse(const char *text, size_t len, const char *dir,
		 struct hv_vmx *out, char *err, size_t errlen)
{
	struct disk_slot slot[HV_MAX_DISKS];
	char *copy, *line, *next;
	unsigned seen = 0, ln = 0;
	int ret = 0, ctk = -1;

	memset(out, 0, sizeof(*out));
	for (unsigned i = 0; i < HV_MAX_DISKS; i++)
		slot[i] = (struct disk_slot){ -1, -1, NULL };
	out->mem_mib = 256;
	out->vcpus = 1;
	if (memchr(text, 0, len))
		return fail(err, errlen, 0, "%s", "NUL byte in the file");
	copy = malloc(len + 1);
	if (!copy)
		return -ENOMEM;
	memcpy(copy, text, len);
	copy[len] = 0;

	for (line = copy; line && !ret; line = next) {
		char *key = NULL, *val = NULL, *p, *c;
		const char *why = NULL;
		uint64_t n;
		int r;

		ln++;
		next = strchr(line, '\n');
		if (next)
			*next++ = 0;
		c = strchr(line, '\r');
		if (c && c[1] == 0)
			*c = 0;
		r = split(line, &key, &val, &why);
		if (r < 0) {
			ret = fail(err, errlen, ln, "%s", why);
			break;
		}
		if (r == 0)
			continue;
		r = 0;
		if (strlen(val) >= PATH_MAX) {
			ret = fail(err, errlen, ln, "value of '%s' too long", key);
			break;
		}

		if (!strcasecmp(key, "displayName")) {
			r = set_str(&out->display_name, &seen, SEEN_NAME, val);
		} else if (!strcasecmp(key, "memSize")) {
			if (seen & SEEN_MEM) {
				r = -EEXIST;
			} else if (parse_uint(val, UINT64_MAX, &n) ||
				   n < HV_MIN_MEM_MIB || n > HV_MAX_MEM_MIB) {
				ret = fail(err, errlen, ln, "memSize \"%s\" out of "
					   "range (2 to 65536 MiB)", val);
				break;
			} else {
				out->mem_mib = n;
				seen |= SEEN_MEM;
			}
		} else if (!strcasecmp(key, "numvcpus")) {
			if (seen & SEEN_VCPUS) {
				r = -EEXIST;
			} else if (parse_uint(val, UINT64_MAX, &n) || n < 1 ||
				   n > HV_MAX_VCPUS) {
				ret = fail(err, errlen, ln, "numvcpus \"%s\" out of "
					   "range (1 to 8)", val);
				break;
			} else {
				out->vcpus = (unsigned)n;
				seen |= SEEN_VCPUS;
			}
		} else if (!strcasecmp(key, "boot.kernel")) {
			r = set_str(&p, &seen, SEEN_KERNEL, val);
			if (!r) {
				out->kernel = resolve(dir, p);
				free(p);
			}
		} else if (!strcasecmp(key, "boot.initrd")) {
			r = set_str(&p, &seen, SEEN_INITRD, val);
			if (!r) {
				out->initrd = resolve(dir, p);
				free(p);
			}
		} else if (!strcasecmp(key, "boot.cmdline")) {
			if (strlen(val) >= HV_MAX_CMDLINE) {
				ret = fail(err, errlen, ln, "%s", "boot.cmdline "
					   "longer than 2047 bytes");
				break;
			}
			r = set_str(&out->cmdline, &seen, SEEN_CMDLINE, val);
		} else if (!strcasecmp(key, "serial0.fileName")) {
			r = set_str(&p, &seen, SEEN_SERIAL, val);
			if (!r) {
				out->serial_file = resolve(dir, p);
				free(p);
			}
		} else if (!strcasecmp(key, "scsi0.virtualDev")) {
			if (seen & SEEN_VDEV) {
				r = -EEXIST;
			} else if (strcasecmp(val, "virtio-blk")) {
				ret = fail(err, errlen, ln, "scsi0.virtualDev \"%s\" "
					   "not supported (virtio-blk)", val);
				break;
			}
			seen |= SEEN_VDEV;
		} else if (!strcasecmp(key, "ctkEnabled")) {
			if (seen & SEEN_CTK) {
				r = -EEXIST;
			} else if ((ctk = parse_bool(val)) < 0) {
				ret = fail(err, errlen, ln, "'%s' must be TRUE or "
					   "FALSE", key);
				break;
			}
			seen |= SEEN_CTK;
		} else if (!strncasecmp(key, "scsi0:", 6)) {
			char *dot;
			unsigned long u;

			errno = 0;
			u = strtoul(key + 6, &dot, 10);
			if (!isdigit((unsigned char)key[6]) || errno ||
			    u >= HV_MAX_DISKS || *dot != '.') {
				ret = fail(err, errlen, ln, "bad disk key '%s' "
					   "(scsi0:0 to scsi0:15)", key);
				break;
			}
			if (!strcasecmp(dot, ".present")) {
				if (slot[u].present >= 0) {
					r = -EEXIST;
				} else if ((slot[u].present = parse_bool(val)) < 0) {
					ret = fail(err, errlen, ln, "'%s' must be "
						   "TRUE or FALSE", key);
					break;
				}
			} else if (!strcasecmp(dot, ".fileName")) {
				if (slot[u].file)
					r = -EEXIST;
				else if (!*val)
					ret = fail(err, errlen, ln, "empty %s", key);
				else if (!(slot[u].file = resolve(dir, val)))
					r = -ENOMEM;
			} else if (!strcasecmp(dot, ".ctkEnabled")) {
				if (slot[u].ctk >= 0) {
					r = -EEXIST;
				} else if ((slot[u].ctk = parse_bool(val)) < 0) {
					ret = fail(err, errlen, ln, "'%s' must be "
						   "TRUE or FALSE", key);
					break;
				}
			} else if (!strcasecmp(dot, ".deviceType")) {
				if (strcasecmp(val, "scsi-hardDisk") &&
				    strcasecmp(val, "disk"))
					ret = fail(err, errlen, ln, "deviceType "
						   "\"%s\" not supported", val);
			} else {
				ret = fail(err, errlen, ln, "unknown key '%s'", key);
			}
		} else {
			const char *const *k;

			for (k = ignored_keys; *k && strcasecmp(*k, key); k++)
				;
			if (!*k)
				ret = fail(err, errlen, ln, "unknown key '%s'", key);
		}
		if (r == -EEXIST)
			ret = fail(err, errlen, ln, "'%s' given twice", key);
		else if (r)
			ret = r;
	}
	free(copy);
	if (ret)
		goto out;

	if (!out->kernel) {
		ret = fail(err, errlen, 0, "%s", "boot.kernel is missing (vmrun "
			   "boots a kernel directly, there is no firmware)");
		goto out;
	}
	if (!out->cmdline && !(out->cmdline = strdup(""))) {
		ret = -ENOMEM;
		goto out;
	}
	for (unsigned i = 0; i < HV_MAX_DISKS; i++) {
		char key[16];

		snprintf(key, sizeof(key), "scsi0:%u", i);
		if (slot[i].present == 1 && !slot[i].file) {
			ret = fail(err, errlen, 0, "%s.present is TRUE but "
				   "fileName is missing", key);
			goto out;
		}
		if (slot[i].present != 1)
			continue;
		out->disks[out->ndisks].unit = i;
		out->disks[out->ndisks].file = slot[i].file;
		/* as ESX: the VM's switch and the disk's */
		out->disks[out->ndisks].ctk = ctk == 1 && slot[i].ctk == 1;
		slot[i].file = NULL;
		out->ndisks++;
	}
out:
	for (unsigned i = 0; i < HV_MAX_DISKS; i++)
		free(slot[i].file);
	if (ret)
		hv_vmx_free(out);
	return ret;
}

void hv_vmx_free(struct hv_vmx *v)
{
	free(v->display_name);
	free(v->kernel);
	free(v->initrd);
	free(v->cmdline);
	free(v->serial_file);
	for (unsigned i = 0; i < v->ndisks; i++)
		free(v->disks[i].file);
	memset(v, 0, sizeof(*v));
}

static int check_file(const char *what, const char *path, char *err,
		      size_t errlen)
{
	struct stat st;

	if (stat(path, &st) < 0) {
		snprintf(err, errlen, "%s %s: %s", what, path, strerror(errno));
		return -errno;
	}
	if (S_ISDIR(st.st_mode)) {
		snprintf(err, errlen, "%s %s: is a directory", what, path);
		return -EISDIR;
	}
	return 0;
}

int hv_vmx_load(const char *path, struct hv_vmx *out, char *err,
		size_t errlen)
{
	char dir[PATH_MAX], *buf = NULL;
	struct stat st;
	int fd, ret;
	ssize_t n;

	memset(out, 0, sizeof(*out));
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		ret = -errno;
		snprintf(err, errlen, "%s: %s", path, strerror(errno));
		goto out;
	}
	if (!S_ISREG(st.st_mode) || st.st_size > (1 << 20)) {
		ret = -EINVAL;
		snprintf(err, errlen, "%s: not a .vmx file (a regular file "
			 "under 1 MiB)", path);
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		ret = -ENOMEM;
		goto out;
	}
	n = read(fd, buf, (size_t)st.st_size);
	if (n != st.st_size) {
		ret = n < 0 ? -errno : -EIO;
		snprintf(err, errlen, "%s: read failed", path);
		goto out;
	}
	snprintf(dir, sizeof(dir), "%s", path);
	ret = hv_vmx_parse(buf, (size_t)n, dirname(dir), out, err, errlen);
	if (ret)
		goto out;
	ret = check_file("boot.kernel", out->kernel, err, errlen);
	if (!ret && out->initrd)
		ret = check_file("boot.initrd", out->initrd, err, errlen);
	for (unsigned i = 0; !ret && i < out->ndisks; i++) {
		const char *f = out->disks[i].file;
		char what[32];

		if (strstr(f, "://") || !strncmp(f, "fault:", 6))
			continue;
		snprintf(what, sizeof(what), "scsi0:%u.fileName",
			 out->disks[i].unit);
		ret = check_file(what, f, err, errlen);
	}
	if (ret)
		hv_vmx_free(out);
out:
	if (fd >= 0)
		close(fd);
	free(buf);
	return ret;
}
