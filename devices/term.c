/* Raw host terminal.  The saved termios is global because the restore has to work from
 * places with no context to pass: atexit and signal handlers. */
#include <errno.h>
#include <signal.h>
#include <stdbool.h>
#include <stdlib.h>
#include <termios.h>
#include <unistd.h>

#include "devices/term.h"

static struct termios term_saved;
static int term_fd = -1;
static volatile sig_atomic_t term_active;

static const int term_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT };

void term_restore(void)
{
	int saved_errno = errno;

	/* The exchange makes concurrent or repeated calls (atexit racing a signal) restore
	 * exactly once; tcsetattr is on the async-signal-safe list. */
	if (__atomic_exchange_n(&term_active, 0, __ATOMIC_SEQ_CST))
		tcsetattr(term_fd, TCSANOW, &term_saved);
	errno = saved_errno;
}

/* Installed with SA_RESETHAND, so the re-raised signal takes the default action (usually
 * death) once this handler returns and unblocks it. */
static void term_signal(int sig)
{
	term_restore();
	raise(sig);
}

static void term_hook_signals(void)
{
	struct sigaction sa = { .sa_handler = term_signal, .sa_flags = SA_RESETHAND };

	sigemptyset(&sa.sa_mask);
	for (size_t i = 0; i < sizeof(term_signals) / sizeof(term_signals[0]); i++) {
		struct sigaction old;

		/* A handler the VMM already installed (or SIG_IGN) is its business: we only
		 * replace the default action, which would kill us with the tty left raw. */
		if (sigaction(term_signals[i], NULL, &old) == 0 && old.sa_handler == SIG_DFL &&
		    !(old.sa_flags & SA_SIGINFO))
			sigaction(term_signals[i], &sa, NULL);
	}
}

int term_raw_enter(int fd)
{
	static bool hooked;
	struct termios raw;

	if (!isatty(fd))
		return 0;
	if (term_active)
		return fd == term_fd ? 0 : -EBUSY;
	if (tcgetattr(fd, &term_saved) < 0)
		return -errno;

	/* Everything is ready for a restore before the terminal changes, so a signal landing
	 * in between cannot leave it raw. */
	term_fd = fd;
	if (!hooked) {
		if (atexit(term_restore))
			return -ENOMEM;
		term_hook_signals();
		hooked = true;
	}
	term_active = 1;

	/* Fully raw, OPOST included: the guest already sends \r\n, and its own tty layer does
	 * echo and signals for Ctrl-C. */
	raw = term_saved;
	cfmakeraw(&raw);
	raw.c_cc[VMIN] = 1;
	raw.c_cc[VTIME] = 0;
	if (tcsetattr(fd, TCSANOW, &raw) < 0) {
		int err = -errno;

		term_active = 0;
		return err;
	}
	return 0;
}
