/* SPDX-License-Identifier: MIT */
/*
 * HELP text for the statistics the kernel ships today (x86 and the generic
 * ones every architecture has); anything else gets a sentence generated from
 * its descriptor, so a stat from a newer kernel is still explained.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "help.h"
#include "macro.h"

struct help_entry {
	const char *name;
	const char *text;
};

/* Sorted by name for bsearch(). Names are the kernel's descriptor names. */
static const struct help_entry curated[] = {
	{ "blocking", "Whether the vCPU is blocked in the kernel waiting for an event (halted)." },
	{ "directed_yield_attempted",
	  "Directed yields to another vCPU attempted on lock-holder preemption." },
	{ "directed_yield_successful", "Directed yields to another vCPU that succeeded." },
	{ "exits", "VM exits of the vCPU, of every reason." },
	{ "fpu_reload", "Reloads of the guest FPU state." },
	{ "guest_mode", "Whether the vCPU is running a nested (L2) guest." },
	{ "halt_attempted_poll", "Halt polls attempted before blocking the vCPU." },
	{ "halt_exits", "VM exits caused by the guest executing HLT." },
	{ "halt_poll_fail_hist",
	  "Time spent in halt polls that ended without a wake-up, by duration." },
	{ "halt_poll_fail_ns", "Time spent in halt polls that ended without a wake-up." },
	{ "halt_poll_invalid", "Halt polls abandoned because polling was not allowed." },
	{ "halt_poll_success_hist",
	  "Time spent in halt polls that ended with a wake-up, by duration." },
	{ "halt_poll_success_ns", "Time spent in halt polls that ended with a wake-up." },
	{ "halt_successful_poll", "Halt polls that ended with a wake-up before blocking." },
	{ "halt_wait_hist",
	  "Time the halted vCPU spent blocked waiting for a wake-up, by duration." },
	{ "halt_wait_ns", "Time the halted vCPU spent blocked waiting for a wake-up." },
	{ "halt_wakeup", "Wake-ups of a halted vCPU." },
	{ "host_state_reload", "Full reloads of host state on the way out of the guest." },
	{ "hypercalls", "Hypercalls made by the guest." },
	{ "insn_emulation", "Guest instructions emulated by KVM." },
	{ "insn_emulation_fail", "Guest instructions KVM failed to emulate." },
	{ "invlpg", "INVLPG instructions intercepted." },
	{ "io_exits", "VM exits for port I/O." },
	{ "irq_exits", "VM exits caused by host interrupts." },
	{ "irq_injections", "Interrupts injected into the guest." },
	{ "irq_window_exits", "VM exits to open an interrupt window." },
	{ "l1d_flush", "L1 data cache flushes on VM entry (L1TF mitigation)." },
	{ "max_mmu_page_hash_collisions",
	  "Largest number of collisions seen in one MMU page hash bucket." },
	{ "max_mmu_rmap_size", "Largest reverse-map chain seen in the MMU." },
	{ "mmio_exits", "VM exits for memory-mapped I/O." },
	{ "mmu_cache_miss", "Shadow MMU page cache misses." },
	{ "mmu_flooded", "Shadow pages unmapped after too many guest writes (write flooding)." },
	{ "mmu_pde_zapped", "Shadow page directory entries zapped." },
	{ "mmu_pte_write", "Guest writes to shadowed page table entries." },
	{ "mmu_recycled", "Shadow MMU pages recycled to stay within the page limit." },
	{ "mmu_shadow_zapped", "Shadow MMU pages zapped." },
	{ "mmu_unsync", "Shadow MMU pages currently unsynchronised with the guest page tables." },
	{ "nested_run", "Entries into a nested (L2) guest." },
	{ "nmi_injections", "Non-maskable interrupts injected into the guest." },
	{ "nmi_window_exits", "VM exits to open an NMI window." },
	{ "notify_window_exits", "VM exits from the notify window (guest stuck in microcode)." },
	{ "nx_lpage_splits", "Huge pages currently split to mitigate the iTLB multihit erratum." },
	{ "pages_1g", "Guest memory currently mapped with 1 GiB pages, in pages." },
	{ "pages_2m", "Guest memory currently mapped with 2 MiB pages, in pages." },
	{ "pages_4k", "Guest memory currently mapped with 4 KiB pages, in pages." },
	{ "pf_emulate", "Page faults resolved by emulating the faulting instruction." },
	{ "pf_fast", "Page faults fixed on the lockless fast path." },
	{ "pf_fixed", "Page faults fixed by installing a mapping." },
	{ "pf_guest", "Page faults reflected back into the guest." },
	{ "pf_mmio_spte_created", "MMIO shadow page table entries created." },
	{ "pf_spurious", "Page faults found already fixed (spurious)." },
	{ "pf_taken", "Page faults handled by KVM." },
	{ "preemption_other", "Times the vCPU thread was preempted while not in the guest." },
	{ "preemption_reported", "Times the vCPU thread was preempted while running the guest." },
	{ "remote_tlb_flush", "Remote TLB flushes performed." },
	{ "remote_tlb_flush_requests", "Remote TLB flushes requested." },
	{ "req_event", "Event requests processed before VM entry." },
	{ "request_irq_exits", "VM exits to let user space inject an interrupt." },
	{ "signal_exits", "VM exits to user space because of a pending signal." },
	{ "tlb_flush", "Guest TLB flushes performed." },
};

static int entry_cmp(const void *key, const void *elem)
{
	return strcmp(key, ((const struct help_entry *)elem)->name);
}

const char *kvmstats_help_curated(const char *desc_name)
{
	const struct help_entry *e =
		bsearch(desc_name, curated, ELEMENTSOF(curated), sizeof(curated[0]), entry_cmp);

	return e ? e->text : NULL;
}

static const char *type_word(unsigned type)
{
	switch (type) {
	case 0:
		return "cumulative";
	case 1:
		return "instantaneous";
	case 2:
		return "peak";
	case 3:
		return "linear histogram";
	case 4:
		return "logarithmic histogram";
	default:
		return "unknown type";
	}
}

static const char *unit_word(unsigned unit)
{
	switch (unit) {
	case 0:
		return "no unit";
	case 1:
		return "bytes";
	case 2:
		return "seconds";
	case 3:
		return "cycles";
	case 4:
		return "boolean";
	default:
		return "unknown unit";
	}
}

char *kvmstats_help_text(const char *desc_name, bool vcpu, unsigned type, unsigned unit,
			 unsigned base, int exponent)
{
	const char *curated_text = kvmstats_help_curated(desc_name);
	char *s = NULL;
	int r;

	if (curated_text)
		r = asprintf(&s, "%s (KVM %s stat %s)", curated_text, vcpu ? "vCPU" : "VM",
			     desc_name);
	else
		r = asprintf(&s, "KVM %s statistic %s: %s, %s, raw scale %s^%d.",
			     vcpu ? "vCPU" : "VM", desc_name, type_word(type), unit_word(unit),
			     base == 1 ? "2" : "10", exponent);
	return r < 0 ? NULL : s;
}
