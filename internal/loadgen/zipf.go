package loadgen

import (
	"math"
	"math/rand/v2"
	"sort"
)

// Zipf draws key ranks 0..n-1 with P(k) proportional to 1/(k+1)^s. Unlike
// math/rand's Zipf it accepts s <= 1 (BMC's workloads use 0.99).
type Zipf struct {
	cdf []float64
}

// NewZipf precomputes the distribution; s = 0 is uniform.
func NewZipf(n int, s float64) *Zipf {
	cdf := make([]float64, n)
	sum := 0.0
	for k := range n {
		sum += 1 / math.Pow(float64(k+1), s)
		cdf[k] = sum
	}
	for k := range cdf {
		cdf[k] /= sum
	}
	return &Zipf{cdf: cdf}
}

// Next draws a rank.
func (z *Zipf) Next(r *rand.Rand) int {
	u := r.Float64()
	return min(sort.SearchFloat64s(z.cdf, u), len(z.cdf)-1)
}

// TopShare is the probability mass of the k most popular keys.
func (z *Zipf) TopShare(k int) float64 {
	if k <= 0 {
		return 0
	}
	return z.cdf[min(k, len(z.cdf))-1]
}
