# Top-level build.  `make` builds every library and program (programs land in
# bin/), `make check` runs every test, `make bench` the benchmarks, `make demo`
# the demo.  Variants: `make SANITIZE=address` (ASan+UBSan), `make
# SANITIZE=thread` (TSan) build into build/<variant>/ with programs in
# build/<variant>/bin.  `make WERROR=0` relaxes -Werror.

CC      ?= cc
WERROR  ?= 1
SANITIZE ?=

ifeq ($(SANITIZE),address)
VARIANT := asan
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=undefined
else ifeq ($(SANITIZE),thread)
VARIANT := tsan
SANFLAGS := -fsanitize=thread -fno-omit-frame-pointer
else ifeq ($(SANITIZE),fuzzer)
# libFuzzer: clang only; libraries instrumented for coverage, targets linked
# with the fuzzer's main
VARIANT := fuzz
CC := clang
SANFLAGS := -fsanitize=fuzzer-no-link,address,undefined -fno-omit-frame-pointer
else ifeq ($(SANITIZE),)
VARIANT := default
SANFLAGS :=
else
$(error SANITIZE must be address, thread or fuzzer)
endif

O := build/$(VARIANT)
ifeq ($(VARIANT),default)
BIN := bin
OPT := -O2
else
BIN := $(O)/bin
OPT := -O1
endif

WARN := -Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	-Wno-unused-parameter
ifeq ($(WERROR),1)
WARN += -Werror
endif

PKGS := liburing libiscsi cmocka fuse3 json-c
PKG_CFLAGS := $(shell pkg-config --cflags $(PKGS) 2>/dev/null)
CFLAGS ?= $(OPT) -g
ALL_CFLAGS := -std=gnu11 -D_GNU_SOURCE -I. $(WARN) $(CFLAGS) $(SANFLAGS) \
	$(PKG_CFLAGS) -MMD -MP
LDFLAGS ?=
ALL_LDFLAGS := $(LDFLAGS) $(SANFLAGS)

MP_LIBS := -luring -laio -liscsi -ljson-c -lsgutils2 -lpthread
CMOCKA_LIBS := -lcmocka

# ---- libraries -----------------------------------------------------------
MP_SRCS := $(wildcard multipath/*.c)
MP_OBJS := $(MP_SRCS:%.c=$(O)/%.o)
LIBMP   := $(O)/multipath/libmp.a

LK_SRCS := $(wildcard lockmgr/*.c)
LK_OBJS := $(LK_SRCS:%.c=$(O)/%.o)
LIBLK   := $(O)/lockmgr/liblk.a

FS_SRCS := $(wildcard fs/*.c)
FS_OBJS := $(FS_SRCS:%.c=$(O)/%.o)
LIBFS   := $(O)/fs/libfs.a

THIN_SRCS := $(wildcard thin/*.c)
THIN_OBJS := $(THIN_SRCS:%.c=$(O)/%.o)
LIBTHIN := $(O)/thin/libthin.a

CBT_SRCS := $(wildcard cbt/*.c)
CBT_OBJS := $(CBT_SRCS:%.c=$(O)/%.o)
LIBCBT  := $(O)/cbt/libcbt.a

# vmfsd's control socket: the server half runs in vmfsd, the client half in
# the tools
CTL_SRCS := vmfsd/ctl.c vmfsd/ctl_client.c
CTL_OBJS := $(CTL_SRCS:%.c=$(O)/%.o)
LIBCTL  := $(O)/vmfsd/libctl.a
VMFSD_OBJS := $(patsubst %.c,$(O)/%.o,$(filter-out $(CTL_SRCS),$(wildcard vmfsd/*.c)))

# higher layers first: the linker resolves left to right
LIBS_ALL := $(LIBCTL) $(LIBCBT) $(LIBTHIN) $(LIBFS) $(LIBLK) $(LIBMP)
SYS_LIBS := $(MP_LIBS) -ljson-c

# ---- programs ------------------------------------------------------------
# tools/<name>.c -> bin/<name>
TOOL_SRCS := $(wildcard tools/*.c)
TOOLS := $(TOOL_SRCS:tools/%.c=$(BIN)/%)
MKFS_SRCS := $(wildcard mkfs/*.c)
TOOLS += $(MKFS_SRCS:mkfs/%.c=$(BIN)/%)
TOOLS += $(BIN)/vmfsd

# ---- tests and benchmarks ------------------------------------------------
UNIT_SRCS := $(wildcard tests/unit/test_*.c)
UNIT_BINS := $(UNIT_SRCS:%.c=$(O)/%)
HELPER_SRCS := $(wildcard tests/helpers/*.c)
HELPER_BINS := $(HELPER_SRCS:%.c=$(O)/%)
FUZZ_SRCS := $(wildcard tests/fuzz/fuzz_*.c)
FUZZ_BINS := $(FUZZ_SRCS:%.c=$(O)/%)
BENCH_SRCS := $(wildcard bench/*.c)
BENCH_BINS := $(BENCH_SRCS:%.c=$(O)/%)

.PHONY: all libs tools tests fuzz check check-unit bench demo deps clean
all: $(LIBS_ALL) $(TOOLS) $(UNIT_BINS) $(HELPER_BINS) $(BENCH_BINS)
libs: $(LIBS_ALL)
tools: $(TOOLS)
tests: $(UNIT_BINS) $(HELPER_BINS)

$(O)/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(ALL_CFLAGS) -c -o $@ $<

$(LIBMP): $(MP_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBLK): $(LK_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBFS): $(FS_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBTHIN): $(THIN_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBCBT): $(CBT_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(LIBCTL): $(CTL_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/%: $(O)/tools/%.o $(LIBS_ALL)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBS_ALL) $(SYS_LIBS)

$(BIN)/vmfsd: $(VMFSD_OBJS) $(LIBS_ALL)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $(VMFSD_OBJS) $(LIBS_ALL) $(SYS_LIBS) -lfuse3

$(BIN)/%: $(O)/mkfs/%.o $(LIBS_ALL)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBS_ALL) $(SYS_LIBS)

$(O)/tests/unit/%: $(O)/tests/unit/%.o $(LIBS_ALL)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBS_ALL) $(SYS_LIBS) $(CMOCKA_LIBS)

# vmfsd's read-ahead on its own (the test stands in for the attachments)
$(O)/tests/unit/test_readahead: $(O)/tests/unit/test_readahead.o $(O)/vmfsd/readahead.o $(LIBS_ALL)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(O)/vmfsd/readahead.o $(LIBS_ALL) $(SYS_LIBS) $(CMOCKA_LIBS)

$(O)/tests/helpers/%: $(O)/tests/helpers/%.o $(LIBS_ALL)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBS_ALL) $(SYS_LIBS)

$(O)/tests/fuzz/%: $(O)/tests/fuzz/%.o $(LIBS_ALL)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $< $(LIBS_ALL) $(SYS_LIBS)

# libFuzzer targets (make SANITIZE=fuzzer fuzz, or through make check)
fuzz:
	@$(MAKE) --no-print-directory SANITIZE=fuzzer fuzz-targets
fuzz-targets: $(FUZZ_BINS)

$(O)/bench/%: $(O)/bench/%.o $(LIBS_ALL)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBS_ALL) $(SYS_LIBS)

# Installs missing Debian packages (quick no-op when all are present).
deps:
	@scripts/install-deps.sh

# Every test: unit and integration on the default build, then the unit tests
# again under ASan+UBSan and TSan.  Ends with "N passed, N failed, N skipped".
check: deps
	@$(MAKE) --no-print-directory all
	@$(MAKE) --no-print-directory SANITIZE=address tests
	@$(MAKE) --no-print-directory SANITIZE=thread tests
	@$(MAKE) --no-print-directory fuzz
	@tests/run-tests.sh

# Unit tests of the current variant only (e.g. make SANITIZE=address check-unit)
check-unit: tests
	@tests/run-tests.sh --unit-only --variant $(VARIANT)

bench: deps
	@$(MAKE) --no-print-directory all
	@bench/run-bench.sh

demo: deps
	@$(MAKE) --no-print-directory all
	@scripts/demo.sh

# Optional, not in `make check`: a stock Debian kernel and an initramfs in
# build/guest/ (fetched with apt-get download, nothing installed), and its
# boot on a thin virtio disk with the disk checked from the host; skipped
# on kvm_pvm unless CHECK_LINUX_FORCE=1 (hypervisor/guest/linux.sh).
.PHONY: guest check-linux
guest: deps
	@hypervisor/guest/linux.sh build

check-linux: deps
	@hypervisor/guest/linux.sh check

clean:
	rm -rf build bin

# Subsystems with their own build rules (e.g. hypervisor/build.mk) add to
# `all` and `tests` from their fragment; they see every variable above.
include $(sort $(wildcard */build.mk))

-include $(wildcard $(O)/*/*.d $(O)/*/*/*.d)
