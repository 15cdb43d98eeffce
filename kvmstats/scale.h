/* SPDX-License-Identifier: MIT */
/*
 * Exact decimal rendering of integer * base^exponent.
 *
 * KVM reports integers with a scale (ns as 10^-9 seconds, MiB as 2^20
 * bytes). Multiplying in floating point would print 1.2345678900000001;
 * instead the digits are shifted and multiplied exactly, so the same
 * integer always prints the same, shortest exact decimal.
 */
#pragma once

#include <stddef.h>
#include <stdint.h>

__extension__ typedef unsigned __int128 kvmstats_u128;

/* Largest |exponent| accepted; descriptors beyond it are skipped as unsupported. */
#define KVMSTATS_SCALE_MAX_EXPONENT 64

/* Enough for any value accepted by kvmstats_format_scaled(), with the NUL. */
#define KVMSTATS_SCALED_BUFSIZE 192

/*
 * Writes v * base^exponent, base being 10 or 2 (the radix, not the KVM
 * base code: see kvmstats_desc_radix()), as a plain
 * decimal without exponent notation, trailing fractional zeros or a trailing
 * point ("0", "1.5", "1048576", "0.000000001"). Returns the length written
 * (excluding the NUL), or -EINVAL for an unknown base or |exponent| above
 * KVMSTATS_SCALE_MAX_EXPONENT, or -ENOBUFS when buf is too small.
 */
int kvmstats_format_scaled(char *buf, size_t len, kvmstats_u128 v, unsigned base, int exponent);

/* Writes v in decimal; returns the length (excluding the NUL) or -ENOBUFS. */
int kvmstats_format_u128(char *buf, size_t len, kvmstats_u128 v);

/* Enough for kvmstats_format_canonical() of any float64 ("1.2345678901234567e+308"), with the NUL.
 */
#define KVMSTATS_CANONICAL_BUFSIZE 32

/*
 * Writes the float64 nearest to a non-negative plain decimal (as
 * kvmstats_format_scaled() writes it) in the canonical form OpenMetrics asks
 * for in "le" labels: Go's shortest %g, with ".0" appended when that has
 * neither a point nor an exponent ("0.0", "1.0", "0.001", "100000.0",
 * "1e+06", "1e-09", "4.294967295"). Prometheus 3 normalises every "le" it
 * ingests to this form. "+Inf" is kept. Independent of the locale. Returns
 * the length (excluding the NUL), -EINVAL when decimal is not such a number
 * (or beyond float64), -ENOBUFS, or -ENOMEM.
 */
int kvmstats_format_canonical(char *buf, size_t len, const char *decimal);
