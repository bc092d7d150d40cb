# minivmm — build, test, bench.  `make help` lists the targets.
CC      ?= gcc
CFLAGS  ?= -O2 -g
CFLAGS  += -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE -pthread -I.
LDLIBS  += -pthread -llzma -lseccomp
# Hardening: fortified libc calls, stack canaries and clash probes, a position-independent
# executable with read-only relocations bound at start-up.
HARDEN  := -D_FORTIFY_SOURCE=3 -fstack-protector-strong -fstack-clash-protection -fPIE
CFLAGS  += $(HARDEN)
LDFLAGS += -pie -Wl,-z,relro,-z,now
VERSION := $(shell cat VERSION 2>/dev/null || echo 0.0.0)
CFLAGS  += -DMINIVMM_VERSION='"$(VERSION)"'

B       := build
SRCS    := $(wildcard vmm/*.c devices/*.c virtio/*.c fs/*.c)
LIBSRCS := $(filter-out vmm/main.c,$(SRCS))
OBJS    := $(SRCS:%.c=$(B)/obj/%.o)
LIBOBJS := $(LIBSRCS:%.c=$(B)/obj/%.o)
UNITSRC := $(wildcard tests/unit/*.c)
SANFLAGS := -fsanitize=address,undefined -fno-omit-frame-pointer -fno-sanitize-recover=all
ASANOBJS := $(LIBSRCS:%.c=$(B)/asan/%.o) $(UNITSRC:%.c=$(B)/asan/%.o)

# Guest image: the newest installed kernel unless KVER is given.
KVER    ?= $(shell ls /boot/vmlinuz-* 2>/dev/null | sed 's|/boot/vmlinuz-||' | sort -V | tail -n1)
KERNEL  ?= /boot/vmlinuz-$(KVER)
GUEST   := $(B)/guest/initrd.img
GUEST9P := $(B)/guest/initrd-9p.img
# The guest image without modules, for kernels with virtio and virtio-fs built in (the
# 6.12 cloud kernel tools/deps unpacks): tests/e2e/k612.sh finds it next to $(GUEST).
GUESTNOMOD := $(B)/guest/initrd-nomod.img
# minivmm run's guest side: static, installed into the image minivmm run builds and caches.
RUNHELPER := $(B)/guest/minivmm-run
# Tests, demo and benchmarks keep minivmm's kernel cache and emuhost's images under
# build/: shared read-write into the emulated host, so they survive from one run to the
# next, and the user's ~/.cache is left alone.
RUNENV  := XDG_CACHE_HOME=$(CURDIR)/$(B)/cache

PREFIX  ?= /usr/local
DESTDIR ?=

.PHONY: all deps guest test unit unit-asan e2e demo bench clean help install uninstall fuzz fuzz-build fuzz-smoke
all: $(B)/minivmm $(RUNHELPER)

$(B)/minivmm: $(OBJS)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS)

$(B)/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -MMD -MP -c -o $@ $<

$(B)/asan/%.o: %.c
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) $(SANFLAGS) -MMD -MP -c -o $@ $<

$(B)/unit-tests: $(LIBOBJS) $(UNITSRC:%.c=$(B)/obj/%.o)
	$(CC) $(CFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

$(B)/unit-tests-asan: $(ASANOBJS)
	$(CC) $(CFLAGS) $(SANFLAGS) $(LDFLAGS) -o $@ $^ $(LDLIBS) -lcriterion

$(RUNHELPER): guest/minivmm-run.c
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -Wall -Wextra -Werror -o $@ $<

deps:
	tools/deps

# The manual page is made from the binary's own --help texts (tools/mkman).
$(B)/minivmm.1: $(B)/minivmm tools/mkman
	tools/mkman $(B)/minivmm >$@.tmp && mv $@.tmp $@

install: all $(GUEST) $(B)/minivmm.1
	tools/install "$(PREFIX)" "$(DESTDIR)" $(B)

uninstall:
	tools/install --uninstall "$(PREFIX)" "$(DESTDIR)" $(B)

guest: $(GUEST)
$(GUEST): guest/mkinitrd guest/init
	guest/mkinitrd --kver $(KVER) -o $@
$(GUESTNOMOD): guest/mkinitrd guest/init
	guest/mkinitrd --no-modules -o $@

unit: $(B)/unit-tests
	$(B)/unit-tests --jobs 2

unit-asan: $(B)/unit-tests-asan
	ASAN_OPTIONS=detect_leaks=1 UBSAN_OPTIONS=print_stacktrace=1 $(B)/unit-tests-asan --jobs 2

# End-to-end: real guests on real KVM — hardware KVM when this host has it,
# otherwise inside the emulated KVM host (tools/emuhost).
e2e: $(B)/minivmm $(GUEST) $(GUESTNOMOD) $(RUNHELPER)
	$(RUNENV) tests/e2e/cli.sh $(B)/minivmm
	$(RUNENV) tests/e2e/runcmd.sh --outer $(B)/minivmm
	$(RUNENV) tests/e2e/emuhost.sh
	tests/e2e/install.sh
	$(RUNENV) EMUHOST_MEM=6144 tools/with-kvm -- tests/e2e/run.sh $(B)/minivmm $(KERNEL) $(GUEST)

test: unit unit-asan fuzz-smoke e2e

# Fuzzing (tests/fuzz/): libFuzzer targets under ASan+UBSan, built with clang into
# build/fuzz/ apart from the gcc objects.  `make fuzz` runs each target FUZZ_TIME seconds,
# `make fuzz-smoke` FUZZ_SMOKE_TIME seconds from the checked-in seeds; two at a time.
# Corpora grow in build/fuzz/corpus/, crashes land in build/fuzz/artifacts/.
FUZZ_CC      ?= clang
FUZZ_TIME    ?= 300
FUZZ_SMOKE_TIME ?= 60
FUZZ_TARGETS := virtq fuse boot pci virtio_transport console
FUZZ_CFLAGS  := -O1 -g -std=gnu11 -Wall -Wextra -Werror -Wno-unused-parameter -D_GNU_SOURCE \
		-pthread -I. -DMINIVMM_VERSION='"$(VERSION)"' $(SANFLAGS)
FUZZLIB      := $(B)/fuzz/libminivmm.a
FUZZBINS     := $(FUZZ_TARGETS:%=$(B)/fuzz/fuzz_%)

$(B)/fuzz/obj/%.o: %.c
	@mkdir -p $(dir $@)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer-no-link -MMD -MP -c -o $@ $<

# An archive, so a target that #includes a source file to reach its static functions
# (console, vmlinux) links without that file's object: nothing pulls it in.
$(FUZZLIB): $(LIBSRCS:%.c=$(B)/fuzz/obj/%.o)
	rm -f $@
	ar rcs $@ $^

$(B)/fuzz/fuzz_%: $(B)/fuzz/obj/tests/fuzz/fuzz_%.o $(FUZZLIB)
	$(FUZZ_CC) $(FUZZ_CFLAGS) -fsanitize=fuzzer -o $@ $^ $(LDLIBS)

.SECONDARY: $(FUZZ_TARGETS:%=$(B)/fuzz/obj/tests/fuzz/fuzz_%.o)

fuzz-build: $(FUZZBINS)

fuzz: $(FUZZBINS)
	B=$(B) tests/fuzz/run.sh $(FUZZ_TIME) $(FUZZ_TARGETS)

fuzz-smoke: $(FUZZBINS)
	B=$(B) tests/fuzz/run.sh $(FUZZ_SMOKE_TIME) $(FUZZ_TARGETS)

demo: $(B)/minivmm $(GUEST)
	$(RUNENV) tools/with-kvm -- $(B)/minivmm --kernel $(KERNEL) --initrd $(GUEST) --cpus 2 --mem 512M -- \
	  sh -c 'echo "kernel $$(uname -r), $$(nproc) CPUs, $$(free -m | awk "/Mem:/{print \$$2}") MiB memory"'

bench: $(B)/minivmm $(RUNHELPER) $(GUEST) $(GUEST9P) $(B)/bench/fsbench $(B)/bench/fuse_bench $(B)/bench/daxbench
	$(RUNENV) tools/with-kvm -- tests/bench/rng.sh $(B)/minivmm $(KERNEL) $(GUEST)
	$(B)/bench/fuse_bench $(B)/bench
	$(RUNENV) tools/with-kvm -- tests/bench/fs.sh $(B)/minivmm $(KERNEL) $(GUEST)
	$(RUNENV) EMUHOST_MEM=6144 tools/with-kvm -- tests/bench/dax.sh $(B)/minivmm $(KERNEL) $(GUEST)
	$(RUNENV) EMUHOST_MEM=4096 tools/with-kvm -- tests/bench/run.sh $(B)/minivmm $(KERNEL)
	tests/bench/runcache.sh $(B)/minivmm $(KERNEL) $(GUEST)

# Benchmark helpers: the in-process virtio-fs request benchmark (the minivmm objects
# without main), the static in-guest workload, and the guest image with the 9p modules
# that the QEMU virtio-9p peer needs (tests/bench/fs.sh finds it next to $(GUEST)).
$(B)/bench/fuse_bench: tests/bench/fuse_bench.c tests/unit/virtq_mock.h $(LIBOBJS)
	@mkdir -p $(dir $@)
	$(CC) $(CFLAGS) -o $@ $< $(LIBOBJS) $(LDLIBS)

$(B)/bench/fsbench: tests/bench/fsbench.c
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -Wall -Wextra -o $@ $<

$(B)/bench/daxbench: tests/bench/daxbench.c
	@mkdir -p $(dir $@)
	$(CC) -static -O2 -Wall -Wextra -o $@ $<

# A kernel without 9p modules (a cloud kernel) just has no 9p peer: fs.sh skips it.
$(GUEST9P): guest/mkinitrd guest/init
	-guest/mkinitrd --kver $(KVER) --extra-modules "9p 9pnet_virtio" -o $@

clean:
	rm -rf $(B)

help:
	@echo "make [all]   build build/minivmm"
	@echo "make deps    install the Debian packages the project uses (root)"
	@echo "make guest   build the guest image build/guest/initrd.img (KVER=... to choose the kernel)"
	@echo "make test    unit tests (plain and ASan/UBSan) and end-to-end tests"
	@echo "make fuzz    libFuzzer targets, FUZZ_TIME s each (make fuzz-smoke: 60 s each, part of make test)"
	@echo "make demo    boot a guest that prints its kernel, CPUs and memory"
	@echo "make install [PREFIX=/usr/local] [DESTDIR=]   install minivmm, its helpers and man page"
	@echo "make uninstall   remove what make install put"
	@echo "make bench   benchmarks, side by side with a peer"

-include $(shell find $(B) -name '*.d' 2>/dev/null)
