# Multi-stage, static build of the manager on a distroless non-root base (no shell).
FROM golang:1.26 AS builder
WORKDIR /workspace
COPY go.mod go.sum ./
RUN go mod download
COPY api/ api/
COPY cmd/ cmd/
COPY controllers/ controllers/
COPY internal/ internal/
COPY webhooks/ webhooks/
RUN CGO_ENABLED=0 GOOS=linux go build -trimpath -o dexterity ./cmd/dexterity

FROM gcr.io/distroless/static:nonroot
WORKDIR /
COPY --from=builder /workspace/dexterity .
USER 65532:65532
ENTRYPOINT ["/dexterity"]
