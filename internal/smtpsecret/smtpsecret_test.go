package smtpsecret

import (
	"strings"
	"testing"
)

func TestParse(t *testing.T) {
	for name, tc := range map[string]struct {
		data    map[string]string
		want    Server
		wantErr string
	}{
		"host only": {data: map[string]string{"host": "smtp.acme.example"},
			want: Server{Host: "smtp.acme.example", Port: 587, TLS: TLSStartTLS}},
		"everything": {data: map[string]string{"host": " smtp.acme.example\n", "port": "465", "tls": "tls", "username": "mailer", "password": "s3cret pass"},
			want: Server{Host: "smtp.acme.example", Port: 465, TLS: TLSImplicit, Username: "mailer", Password: "s3cret pass"}},
		"no host":                     {data: map[string]string{"port": "25"}, wantErr: `key "host"`},
		"port not a number":           {data: map[string]string{"host": "h", "port": "smtp"}, wantErr: `key "port" must be a port number`},
		"port out of range":           {data: map[string]string{"host": "h", "port": "70000"}, wantErr: "between 1 and 65535"},
		"unknown TLS mode":            {data: map[string]string{"host": "h", "tls": "ssl"}, wantErr: `key "tls" must be a TLS mode`},
		"password without a username": {data: map[string]string{"host": "h", "password": "pw-value-1"}, wantErr: "without key \"username\""},
		"every problem at once":       {data: map[string]string{"port": "x", "tls": "y"}, wantErr: `key "host"`},
	} {
		data := map[string][]byte{}
		for k, v := range tc.data {
			data[k] = []byte(v)
		}
		got, err := Parse(data)
		if tc.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Errorf("%s: error %v, want one containing %q", name, err, tc.wantErr)
			}
			for _, v := range tc.data {
				if err != nil && len(v) > 2 && strings.Contains(err.Error(), v) {
					t.Errorf("%s: the error quotes a value (%q): %v", name, v, err)
				}
			}
			continue
		}
		if err != nil || got != tc.want {
			t.Errorf("%s: Parse = %+v, %v; want %+v", name, got, err, tc.want)
		}
	}
}

// FuzzParse: any Secret data parses without panicking; a result is usable (host set, port in
// range, a known TLS mode, no password without a username) and an error never depends on the
// password's content (so it cannot quote it).
func FuzzParse(f *testing.F) {
	f.Add("smtp.acme.example", "587", "starttls", "mailer", "pw")
	f.Add("", "x", "ssl", "", "secret-pw")
	f.Add(" h ", "65536", "none", "", "")
	f.Fuzz(func(t *testing.T, host, port, tls, user, password string) {
		data := map[string][]byte{KeyHost: []byte(host), KeyPort: []byte(port), KeyTLS: []byte(tls), KeyUsername: []byte(user), KeyPassword: []byte(password)}
		s, err := Parse(data)
		if err != nil {
			// The message may not depend on the password's content: the same Secret with
			// another password of the same emptiness gives the same message.
			data[KeyPassword] = []byte(strings.Repeat("x", len(password)))
			if _, other := Parse(data); other == nil || other.Error() != err.Error() {
				t.Fatalf("the error depends on the password: %v / %v", err, other)
			}
			return
		}
		if s.Host == "" || s.Port < 1 || s.Port > 65535 || !ValidTLS(s.TLS) || (s.Password != "" && s.Username == "") {
			t.Fatalf("Parse accepted an unusable server: %+v", s)
		}
	})
}
