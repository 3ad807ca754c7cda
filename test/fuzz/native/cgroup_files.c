/* /proc/self/cgroup and /proc/self/mountinfo, then the join that turns them
 * into the cgroup directory. The input is split at the first NUL byte: the
 * cgroup file before it, mountinfo after (either may be empty). */
#include "fuzz.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
  const uint8_t *nul = memchr(data, '\0', size);
  size_t first = nul ? (size_t)(nul - data) : size;
  char *cg = hw_fuzz_text(data, first);
  char *mi = nul ? hw_fuzz_text(nul + 1, size - first - 1) : hw_fuzz_text(data, 0);
  hw_cgroup_paths paths;
  hw_cgroup_mounts mounts;
  hw__parse_proc_cgroup(cg, &paths);
  hw__parse_mountinfo(mi, &mounts);
  HW_FUZZ_TERMINATED(paths.v1_path);
  HW_FUZZ_TERMINATED(paths.v2_path);
  HW_FUZZ_TERMINATED(mounts.v1_mnt);
  HW_FUZZ_TERMINATED(mounts.v1_root);
  HW_FUZZ_TERMINATED(mounts.v2_mnt);
  HW_FUZZ_TERMINATED(mounts.v2_root);
  char dir[512];
  if (hw__join_cgroup(mounts.v2_mnt, mounts.v2_root, paths.v2_path, dir, sizeof dir) == 0)
    HW_FUZZ_TERMINATED(dir);
  if (hw__join_cgroup(mounts.v1_mnt, mounts.v1_root, paths.v1_path, dir, sizeof dir) == 0)
    HW_FUZZ_TERMINATED(dir);
  /* Joins into a buffer too small must refuse, not overflow. */
  char tiny[8];
  if (hw__join_cgroup(mounts.v1_mnt, mounts.v1_root, paths.v1_path, tiny, sizeof tiny) == 0)
    HW_FUZZ_TERMINATED(tiny);
  free(cg);
  free(mi);
  return 0;
}
