package redisstore_test

import (
	"context"
	"fmt"
	"log"
	"os"

	"github.com/gofincalc/fincalcauth/fincalcauthtest"
	"github.com/gofincalc/fincalcauth/redisstore"
	"github.com/redis/go-redis/v9"
)

func ExampleNew() {
	fake := fincalcauthtest.NewServer() // FinCalc, for the example
	defer fake.Close()
	addr := os.Getenv("REDIS_ADDR") // "localhost:6379", say; the tests set it to their redis-server

	// Every process of a fleet configures the same Redis: the first
	// fetches a token, the others find it there.
	rdb := redis.NewClient(&redis.Options{Addr: addr})
	defer rdb.Close()
	for range 3 {
		cfg := fake.ClientConfig()
		cfg.Store = redisstore.New(rdb)
		if _, err := cfg.TokenSource(context.Background()).Token(); err != nil {
			log.Fatal(err)
		}
	}
	fmt.Println("token requests:", fake.TokenRequests())
	// Output: token requests: 1
}
