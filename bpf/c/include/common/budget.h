/* SPDX-License-Identifier: GPL-2.0 */
/* The amplification budget, shared by both flavors (reply_budget in
 * xdp_cache.c, oreply_budget in xdp_offload.c): plain arithmetic on values
 * the caller looked up, so the offload flavor can use it too (no helpers,
 * maps or global data). See docs/security.md. */
#ifndef XDPCACHE_BUDGET_H
#define XDPCACHE_BUDGET_H

#include <linux/types.h>
#include <bpf/bpf_helpers.h>
#include "consts.h"
#include "structs.h"

/* The largest reply allowed (bytes of IP packet) to a source with an
 * allow-list rule of limit max_amp (listed) or none, for a request of
 * req_ip_len bytes of IP packet; 0 if none may be sent. Sets *reason to the
 * pass counter. */
static __always_inline __u32 amp_budget_of(int listed, __u32 max_amp, __u32 unlisted_amp, __u32 mtu,
					   __u32 req_ip_len, __u32 *reason)
{
	__u32 amp = listed ? max_amp : unlisted_amp;
	if (!listed && !amp) {
		*reason = STAT_PASS_NOT_ALLOWED;
		return 0;
	}
	__u32 budget = mtu;
	if (amp && (__u64)amp * req_ip_len < budget)
		budget = amp * req_ip_len;
	*reason = STAT_PASS_AMPLIFICATION;
	return budget;
}

/* amp_budget_of for the rule a lookup returned (0: not listed). */
static __always_inline __u32 amp_budget(const struct allow_rule *rule, __u32 unlisted_amp, __u32 mtu,
					__u32 req_ip_len, __u32 *reason)
{
	return amp_budget_of(rule != 0, rule ? rule->max_amp : 0, unlisted_amp, mtu, req_ip_len, reason);
}

#endif
