package main

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestEchoReturnsWhatReachedIt(t *testing.T) {
	srv := httptest.NewServer(echo())
	defer srv.Close()
	req, _ := http.NewRequest(http.MethodPatch, srv.URL+"/admin/users?x=1", nil)
	req.Header.Set("X-Auth-Role", "admin")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var got struct {
		Method  string
		Path    string
		Headers http.Header
	}
	if err := json.NewDecoder(resp.Body).Decode(&got); err != nil {
		t.Fatal(err)
	}
	if got.Method != "PATCH" || got.Path != "/admin/users" || got.Headers.Get("X-Auth-Role") != "admin" {
		t.Fatalf("echo = %+v; want PATCH /admin/users with the X-Auth-Role header", got)
	}
}
