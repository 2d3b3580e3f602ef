package controllers

import (
	"context"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// MongoClients hands out one *mongo.Client per connection string, so every Tenant on the same
// server shares one connection pool. Clients are created lazily and fail fast: server
// selection and connecting are bounded by Timeout, so an unreachable server turns into a
// condition within seconds instead of holding a reconcile.
type MongoClients struct {
	timeout time.Duration

	mu      sync.Mutex
	clients map[string]*mongo.Client
}

// NewMongoClients returns an empty cache whose clients give up selecting a server after timeout.
func NewMongoClients(timeout time.Duration) *MongoClients {
	return &MongoClients{timeout: timeout, clients: map[string]*mongo.Client{}}
}

// Client returns the cached client for uri, creating it on first use. It does no I/O; an
// error means uri is not a valid connection string.
func (c *MongoClients) Client(uri string) (*mongo.Client, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if cl, ok := c.clients[uri]; ok {
		return cl, nil
	}
	cl, err := mongo.Connect(options.Client().ApplyURI(uri).
		SetServerSelectionTimeout(c.timeout).
		SetConnectTimeout(c.timeout).
		SetAppName("authmesh-controller"))
	if err != nil {
		// The driver's message may quote the connection string, password included.
		return nil, errors.New("not a valid MongoDB connection string")
	}
	c.clients[uri] = cl
	return cl, nil
}

// Close disconnects every client.
func (c *MongoClients) Close(ctx context.Context) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	var errs []error
	for uri, cl := range c.clients {
		errs = append(errs, cl.Disconnect(ctx))
		delete(c.clients, uri)
	}
	return errors.Join(errs...)
}

// Server error codes the controller tells apart.
const (
	codeUserNotFound    = 11
	codeCommandNotFound = 59 // FerretDB has no user management
	codeUserExists      = 51003
)

func hasCode(err error, code int) bool {
	var se mongo.ServerError
	return errors.As(err, &se) && se.HasErrorCode(code)
}

// isUnreachable reports whether err means no server answered (as opposed to a server that
// answered with an error).
func isUnreachable(err error) bool {
	var se mongo.ServerError
	return err != nil && !errors.As(err, &se)
}

// lookupUser says whether the server manages users, and if so whether user exists in db.
func lookupUser(ctx context.Context, db *mongo.Database, user string) (supported, exists bool, err error) {
	var res struct {
		Users []bson.Raw `bson:"users"`
	}
	err = db.RunCommand(ctx, bson.D{{Key: "usersInfo", Value: user}}).Decode(&res)
	switch {
	case hasCode(err, codeCommandNotFound):
		return false, false, nil
	case err != nil:
		return false, false, fmt.Errorf("looking up database user %s: %w", user, err)
	}
	return true, len(res.Users) > 0, nil
}

// createUser creates user in db with read-write access to db only; when the user exists
// already (its password was lost), it sets the password instead.
func createUser(ctx context.Context, db *mongo.Database, user, password string) error {
	err := db.RunCommand(ctx, bson.D{
		{Key: "createUser", Value: user},
		{Key: "pwd", Value: password},
		{Key: "roles", Value: bson.A{bson.D{{Key: "role", Value: "readWrite"}, {Key: "db", Value: db.Name()}}}},
	}).Err()
	if hasCode(err, codeUserExists) {
		err = db.RunCommand(ctx, bson.D{{Key: "updateUser", Value: user}, {Key: "pwd", Value: password}}).Err()
	}
	if err != nil {
		return fmt.Errorf("creating database user %s: %w", user, err)
	}
	return nil
}

// dropUser removes user from db; a missing user, or a server without user management, is fine.
func dropUser(ctx context.Context, db *mongo.Database, user string) error {
	err := db.RunCommand(ctx, bson.D{{Key: "dropUser", Value: user}}).Err()
	if err != nil && !hasCode(err, codeUserNotFound) && !hasCode(err, codeCommandNotFound) {
		return fmt.Errorf("dropping database user %s: %w", user, err)
	}
	return nil
}

// tenantURI derives the tenant's connection string from the server's: the tenant database in
// the path and, when a user was created, that user's credentials authenticating against the
// tenant database. Without a user it keeps the server's credentials (and where they
// authenticate), since those are the only ones that work.
func tenantURI(base, database, user, password string) (string, error) {
	u, err := url.Parse(base)
	if err != nil || (u.Scheme != "mongodb" && u.Scheme != "mongodb+srv") || u.Host == "" {
		return "", errors.New("not a valid MongoDB connection string")
	}
	q := u.Query()
	if user != "" {
		u.User = url.UserPassword(user, password)
		q.Set("authSource", database)
		// The server's own mechanism (x509, AWS, ...) is not the tenant user's.
		q.Del("authMechanism")
		q.Del("authMechanismProperties")
	} else if u.User != nil && q.Get("authSource") == "" {
		// The server's credentials authenticated against the database in its path, or admin.
		source := strings.TrimPrefix(u.Path, "/")
		if source == "" {
			source = "admin"
		}
		q.Set("authSource", source)
	}
	u.Path = "/" + database
	u.RawPath = ""
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// newPassword returns 256 random bits, URL-safe.
func newPassword() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// shortError keeps a driver error readable in a condition message.
func shortError(err error) string {
	msg := err.Error()
	if len(msg) > 300 {
		msg = msg[:300] + "..."
	}
	return msg
}
