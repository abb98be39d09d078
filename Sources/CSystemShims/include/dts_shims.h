#ifndef DTS_SHIMS_H
#define DTS_SHIMS_H
#include <sys/types.h>

/// Pins thread `tid` to the single host CPU `cpu`. Returns 0, or -1 with errno set.
int dts_pin_thread(pid_t tid, int cpu);

/// Accepts a connection on listening socket `fd`; the new socket is non-blocking and close-on-exec
/// from the start (`accept4`, which Swift's Glibc module does not export). Returns the fd, or -1 with errno set.
int dts_accept_cloexec_nonblock(int fd);

#endif
