# roster's image: built from source, run as a non-root user on a minimal base.
#   docker build -t registry.example.com/roster:0.1.0 .
FROM rust:1.95-bookworm AS build
WORKDIR /src
# Dependencies first, so that a change to roster's code does not fetch them again.
COPY Cargo.toml Cargo.lock ./
COPY benches benches
RUN mkdir src && echo 'fn main() {}' > src/main.rs && touch src/lib.rs \
    && cargo build --release --locked --bin roster && rm -rf src
COPY src src
RUN touch src/main.rs src/lib.rs && cargo build --release --locked --bin roster

# glibc, CA certificates (for the API server's TLS) and nothing else; uid 65532 ("nonroot").
FROM gcr.io/distroless/cc-debian12:nonroot
COPY --from=build /src/target/release/roster /usr/local/bin/roster
USER 65532:65532
EXPOSE 5353/udp 5353/tcp 9153/tcp
ENTRYPOINT ["/usr/local/bin/roster"]
CMD ["serve", "--config", "/etc/roster/roster.toml"]
