// Package webhooks will hold the typed validating webhooks of the four kinds (cross-object and
// Dex-aware rules). Single-object rules are enforced today by CEL/OpenAPI markers on the types in
// api/v1alpha1, and every cross-object rule is also enforced by the controllers.
package webhooks
