package s3io

import (
	"errors"
	"net/http"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
)

// countingClient counts requests whose URL query contains a marker.
type countingClient struct {
	inner  *http.Client
	marker string
	n      atomic.Int32
}

func (c *countingClient) Do(r *http.Request) (*http.Response, error) {
	if strings.Contains(r.URL.RawQuery, c.marker) {
		c.n.Add(1)
	}
	return c.inner.Do(r)
}

func TestList(t *testing.T) {
	hc := &countingClient{inner: newHTTPClient(), marker: "list-type=2"}
	c, _ := newTestClient(t, WithHTTPClient(hc))
	ctx := testCtx(t)
	keys := []string{"k1", "k2", "k3", "k4", "k5"}
	etags := map[string]string{}
	for _, k := range keys {
		etags[k] = putString(t, c, k, "data-"+k)
	}
	tests := []struct {
		name       string
		startAfter string
		pageSize   int32
		want       []string
		requests   int32
	}{
		{name: "pages of 2", pageSize: 2, want: keys, requests: 3},
		{name: "one page", pageSize: 0, want: keys, requests: 1},
		{name: "start after", startAfter: "k2", pageSize: 2, want: keys[2:], requests: 2},
		{name: "start after the end", startAfter: "k9", pageSize: 2, want: nil, requests: 1},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			hc.n.Store(0)
			var got []string
			err := c.List(ctx, testBucket, tt.startAfter, tt.pageSize, func(e ListEntry) error {
				if e.ETag != etags[e.Key] || e.Size != int64(len("data-"+e.Key)) || e.LastModified.IsZero() {
					t.Errorf("entry %+v", e)
				}
				got = append(got, e.Key)
				return nil
			})
			if err != nil || !slices.Equal(got, tt.want) {
				t.Fatalf("got %q, %v; want %q", got, err, tt.want)
			}
			if n := hc.n.Load(); n != tt.requests {
				t.Errorf("%d list requests, want %d", n, tt.requests)
			}
		})
	}
	t.Run("fn error stops the listing", func(t *testing.T) {
		stop := errors.New("stop")
		hc.n.Store(0)
		seen := 0
		err := c.List(ctx, testBucket, "", 2, func(ListEntry) error {
			seen++
			if seen == 2 {
				return stop
			}
			return nil
		})
		if err != stop || seen != 2 || hc.n.Load() != 1 {
			t.Fatalf("err %v after %d entries and %d requests", err, seen, hc.n.Load())
		}
	})
	t.Run("missing bucket", func(t *testing.T) {
		err := c.List(ctx, "nobucket", "", 2, func(ListEntry) error { return nil })
		if !errors.Is(err, ErrNoSuchBucket) || Classify(err) != Permanent {
			t.Fatalf("got %v", err)
		}
	})
}

func TestEnsureBucket(t *testing.T) {
	c, _ := newTestClient(t)
	ctx := testCtx(t)
	for range 2 {
		if err := c.EnsureBucket(ctx, "second"); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := c.Put(ctx, PutInput{Bucket: "second", Key: "k", Body: strings.NewReader("v"), Size: 1}); err != nil {
		t.Fatal(err)
	}
	if err := c.EnsureBucket(ctx, "Bad_Name"); Classify(err) != Permanent {
		t.Fatalf("invalid bucket name: %v", err)
	}
}
