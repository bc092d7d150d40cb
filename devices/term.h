/* Host terminal: raw mode for the guest console, restored however the VMM exits. */
#ifndef MINIVMM_TERM_H
#define MINIVMM_TERM_H

/* If fd is a terminal, switch it to raw mode (no echo, no line editing, no output
 * processing, no signals from Ctrl-C/Ctrl-Z: every byte goes to the guest) and arrange for
 * the original settings to come back at exit() and on SIGINT/SIGTERM/SIGHUP/SIGQUIT.
 * Returns 0 (doing nothing) when fd is not a terminal, negative errno on failure. */
int term_raw_enter(int fd);

/* Put the terminal back as term_raw_enter found it.  Idempotent and async-signal-safe. */
void term_restore(void);

#endif
