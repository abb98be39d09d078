#define _GNU_SOURCE
#include <sched.h>
#include <sys/socket.h>
#include <spawn.h>
#include <stdlib.h>
#include <string.h>
#include <fcntl.h>
#include "dts_shims.h"

int dts_pin_thread(pid_t tid, int cpu) {
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET(cpu, &set);
    return sched_setaffinity(tid, sizeof(set), &set);
}

int dts_accept_cloexec_nonblock(int fd) {
    return accept4(fd, NULL, NULL, SOCK_CLOEXEC | SOCK_NONBLOCK);
}

int dts_spawn_file_actions_addchdir(posix_spawn_file_actions_t *actions, const char *path) {
    return posix_spawn_file_actions_addchdir_np(actions, path);
}

int dts_spawn_file_actions_addclosefrom(posix_spawn_file_actions_t *actions, int from) {
    return posix_spawn_file_actions_addclosefrom_np(actions, from);
}

int dts_spawn_setsid_flag(void) {
    return POSIX_SPAWN_SETSID;
}

const char *dts_signal_abbrev(int signal) {
    return sigabbrev_np(signal);
}

int dts_posix_openpt(int flags) {
    return posix_openpt(flags);
}

int dts_grantpt(int fd) {
    return grantpt(fd);
}

int dts_unlockpt(int fd) {
    return unlockpt(fd);
}

int dts_ptsname_r(int fd, char *buffer, size_t size) {
    return ptsname_r(fd, buffer, size);
}

int dts_mkostemp(char *template_path, int flags) {
    return mkostemp(template_path, flags);
}
