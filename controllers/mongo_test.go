package controllers

import (
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/google/go-cmp/cmp"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
)

func TestTenantURI(t *testing.T) {
	cases := map[string]struct {
		base, user, password string
		want                 string // "" means an error
	}{
		"dev database, no user": {
			base: "mongodb://127.0.0.1:27017/",
			want: "mongodb://127.0.0.1:27017/authmesh_acme",
		},
		"tenant user replaces the platform's credentials": {
			base: "mongodb://root:s3cret@db-0:27017,db-1:27017/admin?replicaSet=rs0&authMechanism=MONGODB-X509",
			user: "tenant-acme", password: "p@ss/word",
			want: "mongodb://tenant-acme:p%40ss%2Fword@db-0:27017,db-1:27017/authmesh_acme?authSource=authmesh_acme&replicaSet=rs0",
		},
		"no user: platform credentials keep authenticating where they did": {
			base: "mongodb://root:s3cret@db:27017/platform",
			want: "mongodb://root:s3cret@db:27017/authmesh_acme?authSource=platform",
		},
		"no user, no path: admin, as the driver would": {
			base: "mongodb://root:s3cret@db:27017",
			want: "mongodb://root:s3cret@db:27017/authmesh_acme?authSource=admin",
		},
		"no user, explicit authSource kept": {
			base: "mongodb://root:s3cret@db:27017/?authSource=ops&tls=true",
			want: "mongodb://root:s3cret@db:27017/authmesh_acme?authSource=ops&tls=true",
		},
		"SRV": {
			base: "mongodb+srv://cluster.example.com/?retryWrites=true", user: "u", password: "p",
			want: "mongodb+srv://u:p@cluster.example.com/authmesh_acme?authSource=authmesh_acme&retryWrites=true",
		},
		"not MongoDB": {base: "postgres://db/x"},
		"no host":     {base: "mongodb:///x"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			got, err := tenantURI(tc.base, "authmesh_acme", tc.user, tc.password)
			if tc.want == "" {
				if err == nil {
					t.Fatalf("tenantURI(%q) = %q; want an error", tc.base, got)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got != tc.want {
				t.Errorf("got  %s\nwant %s", got, tc.want)
			}
			if tc.user != "" {
				u, _ := url.Parse(got)
				if p, _ := u.User.Password(); u.User.Username() != tc.user || p != tc.password {
					t.Errorf("credentials read back as %v", u.User)
				}
			}
		})
	}
}

func TestMongoClientsRefusesBadURIWithoutQuotingIt(t *testing.T) {
	c := NewMongoClients(time.Second)
	_, err := c.Client("mongodb://user:hunter2@host:notaport/")
	if err == nil {
		t.Fatal("a connection string with a bad port was accepted")
	}
	if want := "not a valid MongoDB connection string"; err.Error() != want {
		t.Errorf("err = %q, want %q (the driver's message may quote the password)", err, want)
	}
}

func TestConflictingTenant(t *testing.T) {
	older := metav1.NewTime(time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC))
	newer := metav1.NewTime(older.Add(time.Hour))
	tenant := func(name string, created metav1.Time, specDB, statusDB string) authmeshv1alpha1.Tenant {
		t := authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: name, CreationTimestamp: created}}
		t.Spec.Database.Name, t.Status.DatabaseName = specDB, statusDB
		return t
	}
	cases := map[string]struct {
		me     authmeshv1alpha1.Tenant
		others []authmeshv1alpha1.Tenant
		want   string // name of the conflicting Tenant, or ""
	}{
		"alone":                      {me: tenant("a", newer, "", ""), want: ""},
		"different databases":        {me: tenant("a", newer, "", ""), others: []authmeshv1alpha1.Tenant{tenant("b", older, "", "authmesh_b")}, want: ""},
		"an older Tenant wants mine": {me: tenant("a", newer, "x", ""), others: []authmeshv1alpha1.Tenant{tenant("b", older, "x", "")}, want: "b"},
		"a newer Tenant wants mine":  {me: tenant("a", older, "x", ""), others: []authmeshv1alpha1.Tenant{tenant("b", newer, "x", "")}, want: ""},
		"provisioned beats older":    {me: tenant("a", older, "x", ""), others: []authmeshv1alpha1.Tenant{tenant("b", newer, "x", "x")}, want: "b"},
		"I provisioned it":           {me: tenant("a", newer, "x", "x"), others: []authmeshv1alpha1.Tenant{tenant("b", older, "x", "")}, want: ""},
		"default name of another":    {me: tenant("a", newer, "authmesh_b", ""), others: []authmeshv1alpha1.Tenant{tenant("b", older, "", "")}, want: "b"},
		"case is no difference":      {me: tenant("a", newer, "AUTHMESH_B", ""), others: []authmeshv1alpha1.Tenant{tenant("b", older, "", "authmesh_b")}, want: "b"},
		"same age: by name":          {me: tenant("b", older, "x", ""), others: []authmeshv1alpha1.Tenant{tenant("a", older, "x", "")}, want: "a"},
	}
	for name, tc := range cases {
		t.Run(name, func(t *testing.T) {
			all := append([]authmeshv1alpha1.Tenant{tc.me}, tc.others...)
			var got string
			if o := conflictingTenant(&tc.me, databaseName(&tc.me), all); o != nil {
				got = o.Name
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("conflicting Tenant (-want +got): %s", diff)
			}
			// The reconciler sees only the Tenants the database index gives for the name:
			// the answer must not change.
			var indexed []authmeshv1alpha1.Tenant
			for _, o := range all {
				if slices.Contains(databaseIndex(&o), strings.ToLower(databaseName(&tc.me))) {
					indexed = append(indexed, o)
				}
			}
			got = ""
			if o := conflictingTenant(&tc.me, databaseName(&tc.me), indexed); o != nil {
				got = o.Name
			}
			if diff := cmp.Diff(tc.want, got); diff != "" {
				t.Errorf("conflicting Tenant among the indexed ones (-want +got): %s", diff)
			}
		})
	}
}

func TestTenantIndexes(t *testing.T) {
	tn := &authmeshv1alpha1.Tenant{ObjectMeta: metav1.ObjectMeta{Name: "a"}}
	if got := connectionSecretIndex(tn); !cmp.Equal(got, []string{platformConnection}) {
		t.Errorf("connection Secret of a platform Tenant = %q", got)
	}
	tn.Spec.Database.ConnectionSecretRef.Name = "mongo-a"
	if got := connectionSecretIndex(tn); !cmp.Equal(got, []string{"mongo-a"}) {
		t.Errorf("connection Secret = %q, want mongo-a", got)
	}
	tn.Spec.Database.Name, tn.Status.DatabaseName = "Shop", "shop"
	if got := databaseIndex(tn); !cmp.Equal(got, []string{"shop"}) {
		t.Errorf("database index = %q, want one lower-cased name", got)
	}
	tn.Status.DatabaseName = "authmesh_a"
	if got := databaseIndex(tn); !cmp.Equal(got, []string{"shop", "authmesh_a"}) {
		t.Errorf("database index = %q, want the asked and the held name", got)
	}
	if got := nameConflictIndex(tn); got != nil {
		t.Errorf("conflict index of a Tenant without conditions = %q", got)
	}
	tn.Status.Conditions = []metav1.Condition{{Type: ConditionDatabaseReady, Status: metav1.ConditionFalse, Reason: ReasonDatabaseNameConflict}}
	if got := nameConflictIndex(tn); !cmp.Equal(got, []string{"true"}) {
		t.Errorf("conflict index of a refused Tenant = %q", got)
	}
}
