/* The guest-command archive: written by cpio.c, unpacked by the system cpio (as the kernel
 * unpacks it), and the command run by /bin/sh (as the guest's init runs it).  What reaches
 * the program must be argv byte for byte, whatever the bytes. */
#include <criterion/criterion.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "vmm/cpio.h"

static char dir[64];

static void mkdir_init(void)
{
	strcpy(dir, "/tmp/minivmm-cpio-XXXXXX");
	cr_assert(mkdtemp(dir));
}

static void rm_fini(void)
{
	char cmd[128];
	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	if (system(cmd) != 0)
		cr_log_warn("could not remove %s", dir);
}

TestSuite(cpio, .init = mkdir_init, .fini = rm_fini);

static int run(const char *fmt, ...)
{
	char cmd[512];
	va_list ap;
	va_start(ap, fmt);
	vsnprintf(cmd, sizeof(cmd), fmt, ap);
	va_end(ap);
	int st = system(cmd);
	return WIFEXITED(st) ? WEXITSTATUS(st) : -1;
}

static unsigned hex8(const uint8_t *p)
{
	char s[9];
	memcpy(s, p, 8);
	s[8] = '\0';
	return (unsigned)strtoul(s, NULL, 16);
}

/* Walk the newc records: every header 4-byte aligned with magic 070701, names and data
 * inside the archive, TRAILER!!! last.  Returns the number of records before it. */
static int walk(const struct cpio *c, const char **names, uint32_t *modes, int max)
{
	cr_assert_eq(c->len % 4, 0, "archive length %zu", c->len);
	size_t off = 0;
	for (int i = 0;; i++) {
		cr_assert_eq(off % 4, 0);
		cr_assert_leq(off + 110, c->len, "header past the end");
		const uint8_t *h = c->buf + off;
		cr_assert_eq(memcmp(h, "070701", 6), 0, "record %d at %zu: bad magic", i, off);
		uint32_t mode = hex8(h + 14), size = hex8(h + 54), namesz = hex8(h + 94);
		const char *name = (const char *)h + 110;
		cr_assert_leq(off + 110 + namesz, c->len);
		cr_assert_eq(name[namesz - 1], '\0', "name not NUL-terminated");
		off = (off + 110 + namesz + 3) & ~(size_t)3;
		off = (off + size + 3) & ~(size_t)3;
		cr_assert_leq(off, c->len);
		if (!strcmp(name, "TRAILER!!!")) {
			cr_assert_eq(off, c->len, "bytes after the trailer");
			return i;
		}
		cr_assert_lt(i, max);
		names[i] = name;
		modes[i] = mode;
	}
}

static void extract(const struct cpio *c)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/a.cpio", dir);
	FILE *f = fopen(path, "wb");
	cr_assert(f);
	cr_assert_eq(fwrite(c->buf, 1, c->len, f), c->len);
	fclose(f);
	cr_assert_eq(run("cd %s && cpio -idm --quiet < a.cpio 2>cpio.err", dir), 0,
		     "cpio could not unpack it: see %s/cpio.err", dir);
}

static char *slurp(const char *name, size_t *len)
{
	char path[128];
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	FILE *f = fopen(path, "rb");
	cr_assert(f, "%s missing", path);
	char *out = NULL;
	*len = 0;
	FILE *m = open_memstream(&out, len);
	int ch;
	while ((ch = fgetc(f)) != EOF)
		fputc(ch, m);
	fclose(m);
	fclose(f);
	return out;
}

static bool exists(const char *name)
{
	char path[128];
	struct stat st;
	snprintf(path, sizeof(path), "%s/%s", dir, name);
	return stat(path, &st) == 0;
}

Test(cpio_shell_quote, single_quote)
{
	char *argv[] = { "it's" };
	char *q = cpio_shell_quote(argv, 1);
	cr_assert_str_eq(q, "'it'\\''s'");
	free(q);
}

Test(cpio_shell_quote, words_and_empty)
{
	char *argv[] = { "a b", "", "''", "$x" };
	char *q = cpio_shell_quote(argv, 4);
	cr_assert_str_eq(q, "'a b' '' ''\\'''\\''' '$x'");
	free(q);
}

/* The round trip: printf '%s|' prints each argument followed by '|', so its output is
 * argv itself and any quoting slip (expansion, splitting, a lost empty word) shows. */
Test(cpio, guest_cmd_round_trip)
{
	char *argv[] = { "printf", "%s|", "two words", "it's", "say \"hi\"", "$HOME", "${x:-y}",
			 "back\\slash\\n", "new\nline", "", "$(echo no)", "`echo no`", "*",
			 "  lead", "tab\there", "\xc3\xa9\x01", "'", "''", "-n", ";exit 3", NULL };
	int argc = sizeof(argv) / sizeof(argv[0]) - 1;
	struct cpio c = { 0 };
	cr_assert_eq(cpio_guest_cmd(&c, argv, argc, false), 0);

	const char *names[8];
	uint32_t modes[8];
	cr_assert_eq(walk(&c, names, modes, 8), 2);
	cr_assert_str_eq(names[0], "minivmm");
	cr_assert_eq(modes[0], 040755);
	cr_assert_str_eq(names[1], "minivmm/cmd");
	cr_assert_eq(modes[1], 0100644);

	extract(&c);
	cpio_free(&c);
	cr_assert(exists("minivmm/cmd"));
	cr_assert(!exists("minivmm/raw"), "raw marker without raw");
	/* exec, so the command's status is the shell's: "exec <quoted argv>\n". */
	size_t n;
	char *script = slurp("minivmm/cmd", &n), *q = cpio_shell_quote(argv, argc), *want_cmd;
	cr_assert_geq(asprintf(&want_cmd, "exec %s\n", q), 0);
	cr_assert_eq(n, strlen(want_cmd));
	cr_assert_eq(memcmp(script, want_cmd, n), 0, "cmd is '%.*s'", (int)n, script);
	free(want_cmd);
	free(q);
	free(script);

	cr_assert_eq(run("cd %s && HOME=/home x=1 sh minivmm/cmd > out 2>err", dir), 0,
		     "sh minivmm/cmd failed, see %s/err", dir);
	char *want = NULL;
	size_t wlen = 0;
	FILE *w = open_memstream(&want, &wlen);
	for (int i = 2; i < argc; i++)
		fprintf(w, "%s|", argv[i]);
	fclose(w);
	char *got = slurp("out", &n);
	cr_assert_eq(n, wlen, "output %zu bytes, want %zu: '%.*s'", n, wlen, (int)n, got);
	cr_assert_eq(memcmp(got, want, n), 0, "got '%.*s'\nwant '%s'", (int)n, got, want);
	free(got);
	free(want);
}

/* The exit status is the command's own (exec: no shell in between to alter it). */
Test(cpio, guest_cmd_status_and_raw)
{
	char *argv[] = { "sh", "-c", "exit 42" };
	struct cpio c = { 0 };
	cr_assert_eq(cpio_guest_cmd(&c, argv, 3, true), 0);
	const char *names[8];
	uint32_t modes[8];
	cr_assert_eq(walk(&c, names, modes, 8), 3);
	cr_assert_str_eq(names[2], "minivmm/raw");
	extract(&c);
	cpio_free(&c);
	cr_assert(exists("minivmm/raw"));
	size_t n;
	free(slurp("minivmm/raw", &n));
	cr_assert_eq(n, 0);
	cr_assert_eq(run("cd %s && sh minivmm/cmd", dir), 42);
}

/* Odd name and data lengths: padding after each, contents intact after unpacking. */
Test(cpio, padding_and_contents)
{
	struct cpio c = { 0 };
	cpio_add(&c, "a", 0100644, "abcde", 5);
	cpio_add(&c, "bb", 0100600, "xy", 2);
	cpio_add(&c, "ccc", 0100644, "", 0);
	cpio_add(&c, "dddd", 0100644, "1234", 4);
	cr_assert_eq(cpio_finish(&c), 0);
	const char *names[8];
	uint32_t modes[8];
	cr_assert_eq(walk(&c, names, modes, 8), 4);
	cr_assert_eq(modes[1], 0100600);
	extract(&c);
	cpio_free(&c);
	const char *file[] = { "a", "bb", "ccc", "dddd" }, *data[] = { "abcde", "xy", "", "1234" };
	for (int i = 0; i < 4; i++) {
		size_t n;
		char *s = slurp(file[i], &n);
		cr_assert_eq(n, strlen(data[i]), "%s: %zu bytes", file[i], n);
		cr_assert_eq(memcmp(s, data[i], n), 0, "%s contents", file[i]);
		free(s);
	}
}

/* Appending to an image of odd length: zero padding up to the 4-byte boundary, the image's
 * own bytes untouched, the archive verbatim after it. */
Test(cpio, append_aligns_and_keeps_both)
{
	struct cpio c = { 0 };
	cpio_add(&c, "minivmm", 0040755, NULL, 0);
	cr_assert_eq(cpio_finish(&c), 0);
	for (size_t odd = 1; odd <= 4; odd++) {
		size_t len = odd;
		uint8_t *img = malloc(len);
		cr_assert(img);
		memset(img, 0xab, len);
		img = cpio_append(img, &len, &c);
		cr_assert(img);
		size_t at = (odd + 3) & ~(size_t)3;
		cr_assert_eq(len, at + c.len, "image of %zu: length %zu", odd, len);
		for (size_t i = 0; i < odd; i++)
			cr_assert_eq(img[i], 0xab);
		for (size_t i = odd; i < at; i++)
			cr_assert_eq(img[i], 0, "padding byte %zu of an image of %zu", i, odd);
		cr_assert_eq(memcmp(img + at, c.buf, c.len), 0);
		free(img);
	}
	cpio_free(&c);
}
