#ifndef DTS_SHIMS_H
#define DTS_SHIMS_H
#include <sys/types.h>

/// Pins thread `tid` to the single host CPU `cpu`. Returns 0, or -1 with errno set.
int dts_pin_thread(pid_t tid, int cpu);

#endif
