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
