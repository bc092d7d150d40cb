/* What guests may cost the VMM process (issue 9 finding 7): every share's fds come out of
 * one process-wide budget that leaves the VMM a reserve, so two busy guests can exhaust
 * only that budget (ENFILE to them) and never the fds the VMM itself needs.
 *
 * The budget comes from RLIMIT_NOFILE, which the server raises as far as it may (to
 * fs.nr_open as root); to test with a small one, this test process gives up
 * CAP_SYS_RESOURCE first and lowers its own limit (Criterion runs each test in its own
 * process, so nothing else is affected). */
#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>
#include <linux/capability.h>

#include "tests/unit/fuse_util.h"

TestSuite(fuse_limits, .init = fx_setup, .fini = fx_teardown);

#define NOFILE 400      /* soft = hard; the budget is then half (the reserve's cap) */

static void small_fd_limit(void)
{
	struct __user_cap_header_struct h = { .version = _LINUX_CAPABILITY_VERSION_3 };
	struct __user_cap_data_struct c[2];
	struct rlimit rl = { NOFILE, NOFILE };

	cr_assert_eq(syscall(SYS_capget, &h, c), 0);
	c[0].effective &= ~(1u << CAP_SYS_RESOURCE);
	c[0].permitted &= ~(1u << CAP_SYS_RESOURCE);
	cr_assert_eq(syscall(SYS_capset, &h, c), 0, "capset: %s", strerror(errno));
	cr_assert_eq(setrlimit(RLIMIT_NOFILE, &rl), 0);
}

static struct fuse_server *server(const char *path)
{
	struct fuse_config cfg = { .path = path, .cache = FUSE_CACHE_AUTO };
	char err[256];
	struct fuse_server *s = fuse_server_create(&cfg, err, sizeof(err));

	cr_assert_not_null(s, "%s", err);
	return s;
}

Test(fuse_limits, one_budget_for_all_shares_with_a_reserve_for_the_vmm)
{
	static uint64_t dh[2 * NOFILE];
	struct fuse_server *a, *b;
	struct fuse_entry_out e;
	struct rlimit rl;
	int na = 0, ret, fds[NOFILE / 4];

	fx_write_file("f", "x", 1);
	fuse_server_destroy(fx.s);
	fx.s = NULL;
	small_fd_limit();
	a = server(fx.share);
	b = server(fx.share);
	cr_assert_eq(getrlimit(RLIMIT_NOFILE, &rl), 0);
	cr_assert_eq(rl.rlim_cur, NOFILE, "the limit was raised again");

	/* Guest A opens directories until the server says no. */
	fx.s = a;
	cr_assert_eq(fx_init(7, 38, FX_ALL_FLAGS, NULL), 0);
	while (na < 2 * NOFILE && (ret = fx_opendir(FUSE_ROOT_ID, &dh[na])) == 0)
		na++;
	cr_assert_eq(ret, -ENFILE, "the guest gets ENFILE, not %d", ret);
	cr_assert_lt(na, NOFILE / 2, "%d fds for one guest: more than the budget", na);
	cr_assert_gt(na, NOFILE / 2 - 20, "only %d fds before ENFILE", na);

	/* Guest B is out of fds too: the budget is the process's, not A's. */
	fx.s = b;
	cr_assert_eq(fx_init(7, 38, FX_ALL_FLAGS, NULL), 0);
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), -ENFILE);
	cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &dh[na]), -ENFILE);

	/* ... and the VMM still has its reserve. */
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++) {
		fds[i] = open("/dev/null", O_RDONLY | O_CLOEXEC);
		cr_assert_geq(fds[i], 0, "the VMM's fd %zu: %s", i, strerror(errno));
	}
	for (size_t i = 0; i < sizeof(fds) / sizeof(fds[0]); i++)
		close(fds[i]);

	/* One released by A is one B may take. */
	fx.s = a;
	cr_assert_eq(fx_releasedir(dh[--na]), 0);
	fx.s = b;
	cr_assert_eq(fx_lookup(FUSE_ROOT_ID, "f", &e), 0);
	cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &dh[na]), -ENFILE);

	/* A server going away gives back everything it held. */
	fuse_server_destroy(a);
	cr_assert_eq(fx_opendir(FUSE_ROOT_ID, &dh[0]), 0);
	cr_assert_eq(fx_releasedir(dh[0]), 0);
	fuse_server_destroy(b);
	fx.s = NULL;
}
