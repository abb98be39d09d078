#ifndef DTS_SHIMS_H
#define DTS_SHIMS_H
#include <spawn.h>
#include <stddef.h>
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

/// `posix_openpt`: opens a pseudo-terminal master with `flags` (`O_RDWR | O_NOCTTY | O_CLOEXEC`).
/// Returns the descriptor, or -1 with errno set.
int dts_posix_openpt(int flags);

/// `grantpt`: makes the slave side of master `fd` usable. Returns 0, or -1 with errno set.
int dts_grantpt(int fd);

/// `unlockpt`: unlocks the slave side of master `fd`. Returns 0, or -1 with errno set.
int dts_unlockpt(int fd);

/// `ptsname_r`: writes the slave device path of master `fd` into `buffer`. Returns 0 or an errno value.
int dts_ptsname_r(int fd, char *buffer, size_t size);

/// `mkostemp`: creates and opens a unique file from `template_path` (ending in `XXXXXX`, replaced
/// in place) with extra open `flags` (`O_CLOEXEC`). Returns the descriptor, or -1 with errno set.
int dts_mkostemp(char *template_path, int flags);

#endif
