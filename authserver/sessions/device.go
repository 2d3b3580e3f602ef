package sessions

import (
	"net/http"

	"github.com/authmesh/authmesh/authserver/clientinfo"
)

// DeviceFromRequest describes the client of r: its IP (clientinfo.IP: the peer address, or
// X-Forwarded-For when the peer is a trusted proxy), its User-Agent (truncated) and a readable
// device name parsed from it, e.g. "Chrome 120 on macOS".
func DeviceFromRequest(r *http.Request) Device {
	ua := clientinfo.UserAgent(r)
	return Device{Name: clientinfo.DeviceName(ua), IP: clientinfo.IP(r), UserAgent: ua}
}
