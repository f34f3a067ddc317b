package unit_test

import api "github.com/dexidp/dex/api/v2"

func dexClient(id string) *api.Client {
	return &api.Client{Id: id, Name: id, Secret: "s3cret", RedirectUris: []string{"https://" + id + ".example.com/cb"}}
}
