package main

import (
	"encoding/json"
	"fmt"
	"image"
	"image/color"
	"image/draw"
	"image/png"
	"io"
	"math"
	"os"
	"path/filepath"
	"strings"

	"golang.org/x/image/font"
	"golang.org/x/image/font/basicfont"
	"golang.org/x/image/math/fixed"
)

// Row is one line of the consolidated table: a figure and the baseline measured next to it in
// the same run.
type Row struct {
	Name         string  `json:"name"`
	Value        float64 `json:"value"`
	Unit         string  `json:"unit"`
	Baseline     float64 `json:"baseline"`
	BaselineName string  `json:"baseline_name"`
	Ratio        float64 `json:"ratio"`
	Note         string  `json:"note,omitempty"`
}

func row(name string, value float64, unit string, baseline float64, baselineName, note string) Row {
	r := Row{Name: name, Value: value, Unit: unit, Baseline: baseline, BaselineName: baselineName, Note: note}
	if baseline != 0 {
		r.Ratio = value / baseline
	}
	return r
}

// printTable writes the rows as a Markdown table.
func printTable(rows []Row) {
	fmt.Printf("\n| row | value | baseline (same run) | ratio |\n| --- | --- | --- | --- |\n")
	for _, r := range rows {
		fmt.Printf("| %s | %s %s | %s %s (%s) | %.3g |\n", r.Name, num(r.Value), r.Unit, num(r.Baseline), r.Unit, r.BaselineName, r.Ratio)
	}
}

func num(v float64) string {
	switch {
	case v == math.Trunc(v) && math.Abs(v) < 1e9:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 100:
		return fmt.Sprintf("%.0f", v)
	case math.Abs(v) >= 1:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.3g", v)
	}
}

// writeResults writes the rows as JSON and as a PNG bar chart beside it (same name, .png).
func writeResults(path string, meta map[string]any, rows []Row) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	data, err := json.MarshalIndent(map[string]any{"run": meta, "rows": rows}, "", "  ")
	if err != nil {
		return err
	}
	if err := os.WriteFile(path, data, 0o644); err != nil {
		return err
	}
	img := chart(rows)
	f, err := os.Create(path[:len(path)-len(filepath.Ext(path))] + ".png")
	if err != nil {
		return err
	}
	if err := png.Encode(f, img); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// chart draws one horizontal bar per row: the ratio to its baseline on a log scale centred on
// 1.0 (bars right of the axis are above the baseline, left below), spanning 10^-decades to
// 10^decades; bars that go further are clipped and drawn darker.
func chart(rows []Row) *image.RGBA {
	const (
		width, labelH, barH, gap, margin = 1000, 16, 16, 10, 12
		decades                          = 3.0
	)
	titleH := 2 * labelH
	height := margin*2 + titleH + len(rows)*(labelH+barH+gap)
	img := image.NewRGBA(image.Rect(0, 0, width, height))
	draw.Draw(img, img.Bounds(), image.NewUniform(color.White), image.Point{}, draw.Src)
	face := basicfont.Face7x13
	text := func(x, y int, s string, c color.Color) {
		d := font.Drawer{Dst: img, Src: image.NewUniform(c), Face: face, Dot: fixed.P(x, y)}
		d.DrawString(s)
	}
	fill := func(r image.Rectangle, c color.Color) {
		draw.Draw(img, r, image.NewUniform(c), image.Point{}, draw.Src)
	}
	left, right := margin, width-margin
	axis := (left + right) / 2
	scale := float64(right-left) / 2 / decades
	text(left, margin+12, "authmesh make bench: ratio to the same-run baseline (log scale, axis = 1.0, each grid line = 10x)", color.Black)
	top := margin + titleH
	bottom := height - margin
	for d := -decades; d <= decades; d++ {
		x := axis + int(d*scale)
		c := color.RGBA{220, 220, 220, 255}
		if d == 0 {
			c = color.RGBA{0, 0, 0, 255}
		}
		fill(image.Rect(x, top, x+1, bottom), c)
	}
	y := top
	for _, r := range rows {
		label := fmt.Sprintf("%s: %s %s vs %s %s (%s) = %.3gx", r.Name, num(r.Value), r.Unit, num(r.Baseline), r.Unit, r.BaselineName, r.Ratio)
		text(left, y+12, strings.ReplaceAll(label, "µ", "u"), color.Black) // basicfont is ASCII
		y += labelH
		if r.Ratio > 0 {
			l := math.Log10(r.Ratio)
			clipped := math.Abs(l) > decades
			l = math.Max(-decades, math.Min(decades, l))
			x := axis + int(l*scale)
			c := color.RGBA{70, 130, 180, 255}
			if clipped {
				c = color.RGBA{25, 60, 110, 255}
			}
			bar := image.Rect(min(axis, x), y, max(axis, x)+1, y+barH)
			if bar.Dx() < 2 {
				bar.Max.X = bar.Min.X + 2
			}
			fill(bar, c)
		} else {
			text(axis+4, y+12, "0", color.RGBA{180, 0, 0, 255})
		}
		y += barH + gap
	}
	return img
}

func jsonEncode(w io.Writer, v any) error { return json.NewEncoder(w).Encode(v) }
