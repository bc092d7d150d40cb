/* AML writer.  Objects that carry a PkgLength (Scope, Device, Method, Package, Buffer)
 * are written without it and get it inserted when they close: its own size (1-4 bytes)
 * depends on the content's, so it cannot be reserved up front. */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "vmm/aml.h"

/* Opcodes (ACPI 6.4 20.3). */
enum {
	OP_ZERO = 0x00, OP_ONE = 0x01, OP_NAME = 0x08, OP_BYTE = 0x0A, OP_WORD = 0x0B,
	OP_DWORD = 0x0C, OP_STRING = 0x0D, OP_QWORD = 0x0E, OP_SCOPE = 0x10, OP_BUFFER = 0x11,
	OP_PACKAGE = 0x12, OP_METHOD = 0x14, OP_DUAL_NAME = 0x2E, OP_MULTI_NAME = 0x2F,
	OP_EXT = 0x5B, OP_EXT_DEVICE = 0x82, OP_RETURN = 0xA4,
};

#define NAME_MAX_SEGS    8

static void fail(struct aml *a, int err)
{
	if (!a->err)
		a->err = err;
}

static bool grow(struct aml *a, size_t n)
{
	size_t cap = a->cap ? a->cap : 256;
	while (cap < a->len + n)
		cap *= 2;
	uint8_t *b = cap == a->cap ? a->buf : realloc(a->buf, cap);
	if (!b)
		fail(a, -ENOMEM);
	else
		a->buf = b, a->cap = cap;
	return b;
}

/* Insert before content already written (a closing scope's PkgLength or buffer size). */
static void insert(struct aml *a, size_t off, const void *p, size_t n)
{
	if (a->err || !grow(a, n))
		return;
	memmove(a->buf + off + n, a->buf + off, a->len - off);
	memcpy(a->buf + off, p, n);
	a->len += n;
}

static void put(struct aml *a, const void *p, size_t n)
{
	insert(a, a->len, p, n);
}

static void put8(struct aml *a, uint8_t b)
{
	put(a, &b, 1);
}

/* Little-endian, `n` bytes: AML and resource descriptors are both little-endian. */
static void le(uint8_t *out, uint64_t v, int n)
{
	for (int i = 0; i < n; i++)
		out[i] = v >> (8 * i);
}

static enum aml_kind top(const struct aml *a)
{
	return a->depth ? a->scope[a->depth - 1].kind : AML_K_TERMS;
}

/* Terms (Name, Device, ...) only make sense in the root or in a Scope/Device/Method. */
static bool need_terms(struct aml *a)
{
	if (top(a) != AML_K_TERMS)
		fail(a, -EINVAL);
	return !a->err;
}

/* A data object starts: inside a package it is one more element; raw buffers hold
 * descriptors only. */
static bool element(struct aml *a)
{
	if (top(a) == AML_K_BUFFER)
		fail(a, -EINVAL);
	else if (top(a) == AML_K_PACKAGE)
		a->scope[a->depth - 1].count++;
	return !a->err;
}

/* PkgLength counts its own bytes: 1 byte up to 63, else a lead byte holding the byte
 * count (bits 7-6) and the low nibble, then 8 bits per following byte (ACPI 6.4 20.2.4). */
static size_t pkglen_encode(uint8_t out[4], size_t content)
{
	if (content + 1 <= 0x3F) {
		out[0] = content + 1;
		return 1;
	}
	for (size_t n = 2; n <= 4; n++) {
		size_t total = content + n;
		if (total >= (size_t)1 << (4 + 8 * (n - 1)))
			continue;
		out[0] = (n - 1) << 6 | (total & 0xF);
		le(out + 1, total >> 4, n - 1);
		return n;
	}
	return 0;
}

static size_t int_encode(uint8_t out[9], uint64_t v)
{
	static const uint8_t prefix[] = { OP_BYTE, OP_WORD, OP_DWORD, OP_QWORD };
	if (v <= 1) {
		out[0] = v ? OP_ONE : OP_ZERO;
		return 1;
	}
	int k = v <= 0xFF ? 0 : v <= 0xFFFF ? 1 : v <= 0xFFFFFFFF ? 2 : 3;
	out[0] = prefix[k];
	le(out + 1, v, 1 << k);
	return 1 + (1 << k);
}

/* One NameSeg: 1-4 of [A-Z0-9_], not starting with a digit, padded with '_'. */
static bool seg_parse(const char *s, size_t n, uint8_t out[4])
{
	if (n < 1 || n > 4 || (s[0] >= '0' && s[0] <= '9'))
		return false;
	for (size_t i = 0; i < 4; i++) {
		char c = i < n ? s[i] : '_';
		if (!((c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '_'))
			return false;
		out[i] = c;
	}
	return true;
}

/* NameString: prefix ('\' or '^'s), then NullName, a NameSeg, DualNamePath or
 * MultiNamePath. */
static void put_name(struct aml *a, const char *name)
{
	uint8_t segs[NAME_MAX_SEGS][4];
	const char *p = name;
	size_t prefix = 0, nseg = 0;
	if (*p == '\\')
		prefix = 1;
	else
		while (p[prefix] == '^')
			prefix++;
	put(a, p, prefix);
	for (p += prefix; *p; nseg++) {
		size_t n = strcspn(p, ".");
		if (nseg == NAME_MAX_SEGS || !seg_parse(p, n, segs[nseg]))
			return fail(a, -EINVAL);
		p += n;
		if (*p == '.' && !*++p)    /* trailing dot */
			return fail(a, -EINVAL);
	}
	if (nseg == 0 && !prefix)
		return fail(a, -EINVAL);
	if (nseg == 0)
		put8(a, OP_ZERO);      /* NullName: "\" alone is the root */
	else if (nseg == 2)
		put8(a, OP_DUAL_NAME);
	else if (nseg > 2) {
		put8(a, OP_MULTI_NAME);
		put8(a, nseg);
	}
	put(a, segs, 4 * nseg);
}

static void scope_open(struct aml *a, enum aml_kind kind)
{
	if (a->err)
		return;
	if (a->depth == AML_MAX_DEPTH)
		return fail(a, -E2BIG);
	a->scope[a->depth++] = (struct aml_scope){ .start = a->len, .kind = kind };
}

static void scope_close(struct aml *a, enum aml_kind kind)
{
	if (a->err)
		return;
	if (!a->depth || top(a) != kind)
		return fail(a, -EINVAL);
	struct aml_scope s = a->scope[--a->depth];
	uint8_t tmp[9];
	if (kind == AML_K_PACKAGE) {
		/* NumElements is a byte; more would need a VarPackage. */
		if (s.count > 0xFF)
			return fail(a, -E2BIG);
		a->buf[s.start] = s.count;
	} else if (kind == AML_K_BUFFER) {
		insert(a, s.start, tmp, int_encode(tmp, a->len - s.start));
	}
	size_t n = pkglen_encode(tmp, a->len - s.start);
	if (!n)    /* beyond 2^28 - 1 */
		return fail(a, -E2BIG);
	insert(a, s.start, tmp, n);
}

long aml_finish(struct aml *a)
{
	if (a->depth)
		fail(a, -EINVAL);
	return a->err ? a->err : (long)a->len;
}

void aml_free(struct aml *a)
{
	free(a->buf);
	*a = (struct aml){ 0 };
}

/* Opcode, PkgLength (later), NameString, then terms. */
static void named_begin(struct aml *a, const uint8_t *op, size_t oplen, const char *name)
{
	if (!need_terms(a))
		return;
	put(a, op, oplen);
	scope_open(a, AML_K_TERMS);
	put_name(a, name);
}

void aml_scope_begin(struct aml *a, const char *name)
{
	named_begin(a, (const uint8_t[]){ OP_SCOPE }, 1, name);
}

void aml_device_begin(struct aml *a, const char *name)
{
	named_begin(a, (const uint8_t[]){ OP_EXT, OP_EXT_DEVICE }, 2, name);
}

void aml_method_begin(struct aml *a, const char *name, unsigned nargs, bool serialized)
{
	if (nargs > 7)
		return fail(a, -EINVAL);
	named_begin(a, (const uint8_t[]){ OP_METHOD }, 1, name);
	put8(a, nargs | (serialized ? 1u << 3 : 0));   /* MethodFlags, SyncLevel 0 */
}

void aml_package_begin(struct aml *a)
{
	if (!element(a))
		return;
	put8(a, OP_PACKAGE);
	scope_open(a, AML_K_PACKAGE);
	put8(a, 0);    /* NumElements, set on close */
}

/* Resource templates close with aml_res_end(): a buffer without an End Tag is not one. */
void aml_end(struct aml *a)
{
	if (top(a) == AML_K_BUFFER)
		return fail(a, -EINVAL);
	scope_close(a, top(a));
}

void aml_name(struct aml *a, const char *name)
{
	if (!need_terms(a))
		return;
	put8(a, OP_NAME);
	put_name(a, name);
}

void aml_int(struct aml *a, uint64_t v)
{
	uint8_t b[9];
	if (element(a))
		put(a, b, int_encode(b, v));
}

void aml_string(struct aml *a, const char *s)
{
	if (!element(a))
		return;
	for (const char *p = s; *p; p++)
		if ((unsigned char)*p > 0x7F)
			return fail(a, -EINVAL);
	put8(a, OP_STRING);
	put(a, s, strlen(s) + 1);
}

/* Three letters in 5 bits each (A = 1) and four hex digits, stored big-endian: the
 * layout predates ACPI, which keeps it for compatibility. */
uint32_t aml_eisaid_value(const char *id)
{
	if (strlen(id) != 7)
		return 0;
	static const char hex[] = "0123456789ABCDEF";
	uint32_t v = 0;
	for (int i = 0; i < 3; i++) {
		if (id[i] < 'A' || id[i] > 'Z')
			return 0;
		v = v << 5 | (id[i] - '@');
	}
	for (int i = 3; i < 7; i++) {
		const char *h = strchr(hex, id[i]);
		if (!h || !*h)      /* strchr finds the terminator too */
			return 0;
		v = v << 4 | (h - hex);
	}
	return __builtin_bswap32(v);
}

/* Always a DWord, not the smallest encoding: that is how _HID/_CID integers are
 * recognised as EISA ids (and how iasl writes them). */
void aml_eisaid(struct aml *a, const char *id)
{
	uint32_t v = aml_eisaid_value(id);
	uint8_t b[5] = { OP_DWORD };
	if (!v)
		return fail(a, -EINVAL);
	if (!element(a))
		return;
	le(b + 1, v, 4);
	put(a, b, sizeof(b));
}

void aml_return(struct aml *a)
{
	if (need_terms(a))
		put8(a, OP_RETURN);
}

void aml_name_int(struct aml *a, const char *name, uint64_t v)
{
	aml_name(a, name);
	aml_int(a, v);
}

void aml_name_string(struct aml *a, const char *name, const char *s)
{
	aml_name(a, name);
	aml_string(a, s);
}

void aml_name_eisaid(struct aml *a, const char *name, const char *id)
{
	aml_name(a, name);
	aml_eisaid(a, id);
}

void aml_res_begin(struct aml *a)
{
	if (!element(a))
		return;
	put8(a, OP_BUFFER);
	scope_open(a, AML_K_BUFFER);
}

/* End Tag (small item 0xF, length 1); checksum 0 means "treat as valid". */
void aml_res_end(struct aml *a)
{
	if (top(a) != AML_K_BUFFER)
		return fail(a, -EINVAL);
	put(a, (uint8_t[]){ 0x79, 0x00 }, 2);
	scope_close(a, AML_K_BUFFER);
}

static void res_put(struct aml *a, const uint8_t *d, size_t n)
{
	if (top(a) != AML_K_BUFFER)
		return fail(a, -EINVAL);
	put(a, d, n);
}

/* Large item 0x86, length 9 (ACPI 6.4 6.4.3.4). */
void aml_res_mem32(struct aml *a, bool writable, uint32_t base, uint32_t len)
{
	uint8_t d[12] = { 0x86, 9, 0, writable };
	le(d + 4, base, 4);
	le(d + 8, len, 4);
	res_put(a, d, sizeof(d));
}

/* Large item 0x89 with one interrupt and no ResourceSource (6.4.3.6). */
void aml_res_interrupt(struct aml *a, unsigned flags, uint32_t gsi)
{
	if (flags & ~(AML_IRQ_EDGE | AML_IRQ_ACTIVE_LOW | AML_IRQ_SHARED))
		return fail(a, -EINVAL);
	uint8_t d[9] = { 0x89, 6, 0, flags | 1 /* consumer */, 1 };
	le(d + 5, gsi, 4);
	res_put(a, d, sizeof(d));
}

/* Small item 0x08, length 7 (6.4.2.5). */
void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len)
{
	if (min > max)
		return fail(a, -EINVAL);
	uint8_t d[8] = { 0x47, 1 /* Decode16 */, min, min >> 8, max, max >> 8, align, len };
	res_put(a, d, sizeof(d));
}

enum { ADDR_MEMORY, ADDR_IO, ADDR_BUS };   /* resource type */
/* General flags: _MIF | _MAF, positive decode, bit 0 clear = producer (a bridge window). */
#define ADDR_FIXED_PRODUCER 0x0C

/* Word/DWord/QWord Address Space descriptors (6.4.3.5.1-3): the same fields at `width`
 * bytes each: granularity, min, max, translation, length.  Granularity is 0 as the spec
 * requires for a fixed-size, fixed-location window. */
static void res_addr(struct aml *a, uint8_t tag, int width, uint8_t type, uint8_t tflags,
		     uint64_t min, uint64_t max)
{
	if (min > max)
		return fail(a, -EINVAL);
	uint8_t d[6 + 5 * 8] = { tag, 0, 0, type, ADDR_FIXED_PRODUCER, tflags };
	size_t n = 6 + 5 * width;
	le(d + 1, n - 3, 2);
	le(d + 6 + 1 * width, min, width);
	le(d + 6 + 2 * width, max, width);
	le(d + 6 + 4 * width, max - min + 1, width);
	res_put(a, d, n);
}

void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max)
{
	res_addr(a, 0x88, 2, ADDR_BUS, 0, min, max);
}

void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max)
{
	res_addr(a, 0x88, 2, ADDR_IO, 3 /* EntireRange */, min, max);
}

/* Memory type flags: bit 0 ReadWrite, bits 2-1 _MEM (0 non-cacheable, 1 cacheable). */
void aml_res_dword_mem(struct aml *a, bool cacheable, uint32_t min, uint32_t max)
{
	res_addr(a, 0x87, 4, ADDR_MEMORY, cacheable ? 3 : 1, min, max);
}

void aml_res_qword_mem(struct aml *a, bool cacheable, uint64_t min, uint64_t max)
{
	res_addr(a, 0x8A, 8, ADDR_MEMORY, cacheable ? 3 : 1, min, max);
}
