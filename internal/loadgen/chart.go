package loadgen

import (
	"fmt"
	"image/color"
	"os"

	"gonum.org/v1/plot"
	"gonum.org/v1/plot/plotter"
	"gonum.org/v1/plot/vg"
	"gonum.org/v1/plot/vg/draw"
	"gonum.org/v1/plot/vg/vgimg"
)

// ChartRow is one bar group of a results chart.
type ChartRow struct {
	Config string  // e.g. "native"
	Series string  // e.g. "zipf 0.99"
	PerSec float64 // replies per second
	P99ms  float64 // p99 latency in milliseconds
}

// WriteChart draws throughput and p99 latency by configuration side by side
// into a PNG file.
//
// A row shows in a panel only where it has that panel's figure (PerSec or
// P99ms above zero), so throughput and latency may come from different runs
// (e.g. latency measured at a fixed rate).
func WriteChart(path string, rows []ChartRow) error {
	var configs []string
	seen := map[string]bool{}
	for _, r := range rows {
		if !seen[r.Config] {
			seen[r.Config] = true
			configs = append(configs, r.Config)
		}
	}
	seriesOf := func(f func(ChartRow) float64) []string {
		var series []string
		seen := map[string]bool{}
		for _, r := range rows {
			if f(r) > 0 && !seen[r.Series] {
				seen[r.Series] = true
				series = append(series, r.Series)
			}
		}
		return series
	}
	value := func(cfg, ser string, f func(ChartRow) float64) float64 {
		for _, r := range rows {
			if r.Config == cfg && r.Series == ser && f(r) > 0 {
				return f(r)
			}
		}
		return 0
	}
	palette := []color.Color{color.RGBA{31, 119, 180, 255}, color.RGBA{255, 127, 14, 255}, color.RGBA{44, 160, 44, 255},
		color.RGBA{214, 39, 40, 255}, color.RGBA{148, 103, 189, 255}}
	panel := func(title, ylabel string, f func(ChartRow) float64) (*plot.Plot, error) {
		p := plot.New()
		p.Title.Text = title
		p.Y.Label.Text = ylabel
		p.NominalX(configs...)
		w := vg.Points(14)
		series := seriesOf(f)
		for i, s := range series {
			vals := make(plotter.Values, len(configs))
			for j, c := range configs {
				vals[j] = value(c, s, f)
			}
			bars, err := plotter.NewBarChart(vals, w)
			if err != nil {
				return nil, err
			}
			bars.Color = palette[i%len(palette)]
			bars.Offset = vg.Length(float64(i)-float64(len(series)-1)/2) * w
			p.Add(bars)
			p.Legend.Add(s, bars)
		}
		p.Legend.Top = true
		return p, nil
	}
	tp, err := panel("Throughput", "replies/s", func(r ChartRow) float64 { return r.PerSec })
	if err != nil {
		return err
	}
	lat, err := panel("p99 latency", "ms", func(r ChartRow) float64 { return r.P99ms })
	if err != nil {
		return err
	}
	img := vgimg.New(vg.Points(1000), vg.Points(420))
	dc := draw.New(img)
	tiles := draw.Tiles{Rows: 1, Cols: 2, PadX: vg.Points(20), PadY: vg.Points(10), PadTop: vg.Points(10), PadBottom: vg.Points(10), PadLeft: vg.Points(10), PadRight: vg.Points(10)}
	canvases := plot.Align([][]*plot.Plot{{tp, lat}}, tiles, dc)
	tp.Draw(canvases[0][0])
	lat.Draw(canvases[0][1])
	png := vgimg.PngCanvas{Canvas: img}
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	defer f.Close()
	if _, err := png.WriteTo(f); err != nil {
		return fmt.Errorf("chart: %w", err)
	}
	return nil
}
