package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"sigs.k8s.io/yaml"

	authmeshv1alpha1 "github.com/authmesh/authmesh/api/v1alpha1"
	"github.com/authmesh/authmesh/authserver/identity"
	"github.com/authmesh/authmesh/authserver/tenancy"
)

// demoPassword is the password of every seeded user (DESIGN.md pins it for the demo).
const demoPassword = "secret123"

// demoUsers are the users `make dev` seeds, by tenant.
var demoUsers = map[string][]identity.NewUser{
	"darmist1": {
		{Username: "testuser", Email: "testuser@example.com", Mobile: "+15550000001", Role: "user"},
		{Username: "manager1", Email: "manager1@example.com", Role: "manager"},
		{Username: "admin1", Email: "admin1@example.com", Role: "admin"},
	},
	"acme2": {
		{Username: "testuser", Email: "testuser@example.com", Role: "user"},
	},
}

// seed creates the demo users that are missing, writing through the same code signup uses.
func seed(ctx context.Context, mongoURI, samples string) error {
	client, err := mongo.Connect(options.Client().ApplyURI(mongoURI).SetTimeout(30 * time.Second))
	if err != nil {
		return err
	}
	defer func() { _ = client.Disconnect(context.WithoutCancel(ctx)) }()
	for tenant, users := range demoUsers {
		spec, err := sampleSpec(filepath.Join(samples, "tenant-"+tenant+".yaml"))
		if err != nil {
			return err
		}
		db := client.Database(tenancy.DatabaseName(tenant, spec))
		for _, u := range users {
			u.Password = demoPassword
			_, err := identity.CreateUser(ctx, db, spec, u)
			var exists *identity.ExistsError
			switch {
			case errors.As(err, &exists):
				// Seeded by an earlier run: a second run keeps the data as it is.
			case err != nil:
				return fmt.Errorf("%s/%s: %w", tenant, u.Username, err)
			default:
				fmt.Printf("devstack   | seeded %s/%s (%s)\n", tenant, u.Username, u.Role)
			}
		}
	}
	return nil
}

// sampleSpec reads a Tenant manifest and applies the API server's defaults.
func sampleSpec(path string) (*authmeshv1alpha1.TenantSpec, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, err
	}
	var t authmeshv1alpha1.Tenant
	if err := yaml.UnmarshalStrict(data, &t); err != nil {
		return nil, fmt.Errorf("%s: %w", path, err)
	}
	tenancy.ApplyDefaults(&t.Spec)
	return &t.Spec, nil
}
