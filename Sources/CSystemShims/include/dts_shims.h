#ifndef DTS_SHIMS_H
#define DTS_SHIMS_H
#include <spawn.h>
#include <sys/types.h>

/// Pins thread `tid` to the single host CPU `cpu`. Returns 0, or -1 with errno set.
int dts_pin_thread(pid_t tid, int cpu);

/// Accepts a connection on listening socket `fd`; the new socket is non-blocking and close-on-exec
/// from the start (`accept4`, which Swift's Glibc module does not export). Returns the fd, or -1 with errno set.
int dts_accept_cloexec_nonblock(int fd);

/// `posix_spawn_file_actions_addchdir_np`: the child changes to `path` at this point of the file
/// actions. Returns 0 or an errno value.
int dts_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path);

/// `posix_spawn_file_actions_addclosefrom_np`: the child closes every descriptor from `from` up
/// at this point of the file actions. Returns 0 or an errno value.
int dts_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from);

/// The `POSIX_SPAWN_SETSID` attribute flag (the child starts a new session).
int dts_spawn_setsid_flag(void);

/// The abbreviated name of signal `signal` without its `SIG` prefix (`KILL`), or NULL.
const char *dts_signal_abbrev(int signal);

#endif
