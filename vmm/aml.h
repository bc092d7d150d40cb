/* A small AML byte-code writer: just enough to describe devices in the DSDT (names,
 * devices, packages for _PRT, resource templates for _CRS).  ACPI 6.4 chapters 19-20 for
 * the encoding, 6.4 for the resource descriptors.
 *
 * Usage: zero a struct aml, emit, then aml_finish().  Errors are sticky: after the first
 * one (bad name, bad argument, allocation failure, unbalanced scopes) every call is a
 * no-op and aml_finish() returns that error, so callers check once at the end. */
#ifndef MINIVMM_AML_H
#define MINIVMM_AML_H
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define AML_MAX_DEPTH 16

enum aml_kind { AML_K_TERMS, AML_K_PACKAGE, AML_K_BUFFER };

struct aml {
	uint8_t *buf;
	size_t len, cap;
	int err;            /* first error (negative errno), sticky */
	int depth;
	/* Open scopes: where each one's PkgLength goes, filled in when it closes (its size
	 * is only known then). */
	struct aml_scope {
		size_t start;
		enum aml_kind kind;
		unsigned count;     /* packages: elements so far */
	} scope[AML_MAX_DEPTH];
};

/* Returns the byte count, or the sticky error (-EINVAL if a scope is still open). */
long aml_finish(struct aml *a) __attribute__((warn_unused_result));
void aml_free(struct aml *a);

/* Scope (name) {, Device (name) {, Method (name, nargs, Serialized?) {, Package () {
 * and Buffer () {; aml_end() closes the innermost one.  Names are "ABCD", shorter ones
 * padded with '_' ("PCI" = "PCI_"), or paths: "\\_SB_", "\\_SB_.PCI0", "^FOO". */
void aml_scope_begin(struct aml *a, const char *name);
void aml_device_begin(struct aml *a, const char *name);
void aml_method_begin(struct aml *a, const char *name, unsigned nargs, bool serialized);
void aml_package_begin(struct aml *a);
void aml_end(struct aml *a);

/* Name (name, <the object emitted next>). */
void aml_name(struct aml *a, const char *name);
/* Data objects: as a Name's value, a package element or a Return's value. */
void aml_int(struct aml *a, uint64_t v);          /* smallest encoding */
void aml_string(struct aml *a, const char *s);    /* ASCII 0x01-0x7F */
void aml_eisaid(struct aml *a, const char *id);   /* "PNP0A03" -> DWord 0x030AD041 */
void aml_return(struct aml *a);                   /* Return (<next object>) */

/* The common Name (name, value) forms. */
void aml_name_int(struct aml *a, const char *name, uint64_t v);
void aml_name_string(struct aml *a, const char *name, const char *s);
void aml_name_eisaid(struct aml *a, const char *name, const char *id);

/* EISAID("PNP0A03") as the DWord AML stores; 0 if `id` is not 3 letters + 4 hex digits. */
uint32_t aml_eisaid_value(const char *id);

/* ResourceTemplate () {: a Buffer; aml_res_end() appends the End Tag and closes it.
 * The aml_res_* descriptors are only valid inside one. */
void aml_res_begin(struct aml *a);
void aml_res_end(struct aml *a);

/* Extended Interrupt descriptor flags; ResourceConsumer is implied. */
#define AML_IRQ_LEVEL       0
#define AML_IRQ_EDGE        (1u << 1)
#define AML_IRQ_ACTIVE_HIGH 0
#define AML_IRQ_ACTIVE_LOW  (1u << 2)
#define AML_IRQ_EXCLUSIVE   0
#define AML_IRQ_SHARED      (1u << 3)

/* Memory32Fixed (ReadWrite/ReadOnly, base, len). */
void aml_res_mem32(struct aml *a, bool writable, uint32_t base, uint32_t len);
/* Interrupt (ResourceConsumer, flags) { gsi }. */
void aml_res_interrupt(struct aml *a, unsigned flags, uint32_t gsi);
/* IO (Decode16, min, max, align, len). */
void aml_res_io(struct aml *a, uint16_t min, uint16_t max, uint8_t align, uint8_t len);
/* Bridge windows, all ResourceProducer, MinFixed, MaxFixed, PosDecode, [min, max]:
 * WordBusNumber, WordIO (EntireRange), DWordMemory and QWordMemory (ReadWrite). */
void aml_res_word_bus(struct aml *a, uint16_t min, uint16_t max);
void aml_res_word_io(struct aml *a, uint16_t min, uint16_t max);
void aml_res_dword_mem(struct aml *a, bool cacheable, uint32_t min, uint32_t max);
void aml_res_qword_mem(struct aml *a, bool cacheable, uint64_t min, uint64_t max);

#endif
