// Command demoapp is the app authmesh protects in `make dev` and the kind demo: it answers every
// request with JSON {"method", "path", "headers"} echoing what reached it, so a person can see
// which requests the sidecar let through and the identity headers it added. Dev and demo only.
package main

import (
	"encoding/json"
	"flag"
	"fmt"
	"log/slog"
	"net/http"
	"os"
	"time"

	"github.com/authmesh/authmesh/internal/version"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:3501", "address to serve on")
	showVersion := flag.Bool("version", false, "print the version and exit")
	flag.Parse()
	if *showVersion {
		fmt.Println(version.String("demoapp"))
		return
	}
	logger := slog.New(slog.NewTextHandler(os.Stderr, nil)).With("component", "demoapp")
	srv := &http.Server{Addr: *addr, Handler: echo(), ReadHeaderTimeout: 10 * time.Second}
	logger.Info("demo app listening", "addr", *addr)
	if err := srv.ListenAndServe(); err != nil {
		logger.Error("stopped", "err", err)
		os.Exit(1)
	}
}

// echo answers with the request it received.
func echo() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(map[string]any{
			"method":  r.Method,
			"path":    r.URL.Path,
			"headers": r.Header,
		})
	})
}
