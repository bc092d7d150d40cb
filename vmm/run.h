/* `minivmm run [options] -- CMD...`: run CMD in a throwaway guest that boots the host's own
 * system over virtio-fs (host / read-only, the working directory read-write) and return
 * its exit status. */
#ifndef MINIVMM_RUN_H
#define MINIVMM_RUN_H

/* argv[0] is "run"; returns (or exits with) the status minivmm exits with. */
int run_main(int argc, char **argv);

#endif
