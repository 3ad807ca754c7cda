/*
 * The heap map of sampling mode: one bit per 16-byte granule of address
 * space saying "this heap block was counted in the totals" (sampling.h has
 * the rule and the memory ordering). The top level, 2 MiB of leaf pointers
 * for 48-bit addresses, is mapped when sampling starts (untouched pages cost
 * nothing); a leaf (8 MiB of bits per GiB of addresses) is mapped the first
 * time a block lands in its GiB.
 */
#define _GNU_SOURCE
#include <sys/mman.h>
#include <sys/syscall.h>
#include <unistd.h>

#include "sampling.h"

_Atomic(hw_hm_word *) *hw__hm_top;
_Atomic uint32_t hw__tabled[HW_TABLED_BUCKETS];

#define HW_HM_LEAF_BYTES (HW_HM_LEAF_WORDS * sizeof(hw_hm_word))

hw_hm_word *hw__hm_leaf(uintptr_t a) {
  _Atomic(hw_hm_word *) *slot = &hw__hm_top[a >> HW_HM_LEAF_SHIFT];
  hw_hm_word *leaf = hw__pages_alloc(HW_HM_LEAF_BYTES);
  if (!leaf) return NULL;
  hw_hm_word *none = NULL;
  /* Release: the leaf's (zero) pages before its pointer. Another thread may
   * have mapped it first: use theirs. */
  if (!atomic_compare_exchange_strong_explicit(slot, &none, leaf, memory_order_acq_rel,
                                               memory_order_acquire)) {
    hw__pages_free(leaf, HW_HM_LEAF_BYTES);
    return none;
  }
  return leaf;
}

/* Every bit cleared, every bucket zero (hw__lock held: the table is emptied
 * at the same time). The leaves stay mapped: a thread counting a block at
 * this moment may still hold a leaf's address; its pages go back to the
 * kernel (MADV_DONTNEED reads back as zeros). Such an in-flight block is
 * counted or not, as it races with the reset. */
void hw__hm_reset(void) {
  for (size_t i = 0; i < HW_TABLED_BUCKETS; i++)
    atomic_store_explicit(&hw__tabled[i], 0, memory_order_relaxed);
  if (!hw__hm_top) return;
  for (size_t i = 0; i < HW_HM_TOP; i++) {
    hw_hm_word *leaf = atomic_load_explicit(&hw__hm_top[i], memory_order_acquire);
    if (leaf) syscall(SYS_madvise, (void *)leaf, HW_HM_LEAF_BYTES, MADV_DONTNEED);
  }
}
