"""containerd-compatible gRPC API (generated stubs live in contentd.api._pb)."""
