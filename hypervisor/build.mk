# hypervisor/build.mk - the KVM executor (libhv, vmrun) and the test guest
# (vmtest.elf).  Included by the root Makefile, whose variables it uses.

HV_SRCS := $(filter-out hypervisor/vmrun.c,$(wildcard hypervisor/*.c))
HV_OBJS := $(HV_SRCS:%.c=$(O)/%.o)
LIBHV   := $(O)/hypervisor/libhv.a

$(LIBHV): $(HV_OBJS)
	@mkdir -p $(dir $@)
	rm -f $@ && ar rcs $@ $^

$(BIN)/vmrun: $(O)/hypervisor/vmrun.o $(LIBHV) $(LIBS_ALL)
	@mkdir -p $(dir $@)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBHV) $(LIBS_ALL) $(SYS_LIBS)

# Unit tests and fuzz targets of the executor link libhv too.
HV_UNIT_BINS := $(patsubst %.c,$(O)/%,$(wildcard tests/unit/test_hv_*.c))
HV_FUZZ_BINS := $(patsubst %.c,$(O)/%,$(wildcard tests/fuzz/fuzz_hv_*.c))

$(HV_UNIT_BINS): $(O)/tests/unit/%: $(O)/tests/unit/%.o $(LIBHV) $(LIBS_ALL)
	$(CC) $(ALL_LDFLAGS) -o $@ $< $(LIBHV) $(LIBS_ALL) $(SYS_LIBS) $(CMOCKA_LIBS)

$(HV_FUZZ_BINS): $(O)/tests/fuzz/%: $(O)/tests/fuzz/%.o $(LIBHV) $(LIBS_ALL)
	$(CC) $(ALL_LDFLAGS) -fsanitize=fuzzer -o $@ $< $(LIBHV) $(LIBS_ALL) $(SYS_LIBS)

# ---- the test guest ------------------------------------------------------
# Freestanding, built with the system compiler whatever the variant: it
# runs inside the VM, so it never gets sanitizer or fuzzer flags.
GUEST_CC := cc
GUEST_CFLAGS := -std=gnu11 -O2 -g -ffreestanding -fno-builtin -nostdlib \
	-mno-red-zone -mgeneral-regs-only -fno-pic -fno-pie -static \
	-fno-stack-protector -fno-asynchronous-unwind-tables -mcmodel=small --param=min-pagesize=0 \
	-Wall -Wextra -Wshadow -Wstrict-prototypes -Wmissing-prototypes \
	$(if $(filter 1,$(WERROR)),-Werror)
GUEST_OBJS := $(O)/hypervisor/guest/vmtest_entry.o $(O)/hypervisor/guest/vmtest.o

$(O)/hypervisor/guest/%.o: hypervisor/guest/%.c
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(O)/hypervisor/guest/%.o: hypervisor/guest/%.S
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -c -o $@ $<

$(BIN)/vmtest.elf: $(GUEST_OBJS) hypervisor/guest/vmtest.ld
	@mkdir -p $(dir $@)
	$(GUEST_CC) $(GUEST_CFLAGS) -no-pie -Wl,--build-id=none \
		-Wl,-z,max-page-size=4096 -Wl,-z,noexecstack -Wl,--no-warn-rwx-segments \
		-T hypervisor/guest/vmtest.ld -o $@ $(GUEST_OBJS)

all: $(BIN)/vmrun $(BIN)/vmtest.elf
tests: $(BIN)/vmrun $(BIN)/vmtest.elf
