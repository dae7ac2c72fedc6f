# syntax=docker/dockerfile:1
# SharedRuntime: one Dapr-compatible runtime per node. Build: docker build -t shared-runtime .

FROM mcr.microsoft.com/dotnet/sdk:10.0 AS build
WORKDIR /source
ENV DOTNET_CLI_TELEMETRY_OPTOUT=1 DOTNET_NOLOGO=1
# The native compiler's link step needs a C toolchain.
RUN apt-get update && apt-get install -y --no-install-recommends clang zlib1g-dev && rm -rf /var/lib/apt/lists/*

# Restore first, from the build settings and project files only, so the package layer is reused until they change.
COPY global.json Directory.Build.props Directory.Packages.props SharedRuntime.sln ./
COPY src/SharedRuntime.Core/SharedRuntime.Core.csproj src/SharedRuntime.Core/
COPY src/SharedRuntime.Api/SharedRuntime.Api.csproj src/SharedRuntime.Api/
COPY src/SharedRuntime.Components/SharedRuntime.Components.csproj src/SharedRuntime.Components/
COPY src/SharedRuntime.Components.Backends/SharedRuntime.Components.Backends.csproj src/SharedRuntime.Components.Backends/
COPY src/SharedRuntime.Kubernetes/SharedRuntime.Kubernetes.csproj src/SharedRuntime.Kubernetes/
COPY src/SharedRuntime.Host/SharedRuntime.Host.csproj src/SharedRuntime.Host/
RUN dotnet restore -r linux-x64 src/SharedRuntime.Host/SharedRuntime.Host.csproj

COPY .editorconfig ./
COPY src/ src/
# One native executable (NativeAOT): no JIT at start or later, a fast start and a small resident set.
RUN dotnet publish src/SharedRuntime.Host/SharedRuntime.Host.csproj -c Release -r linux-x64 --no-restore -o /app && rm -f /app/*.dbg /app/*.pdb

FROM mcr.microsoft.com/dotnet/runtime-deps:10.0 AS runtime
WORKDIR /app
COPY --from=build --chown=root:root /app ./
# The image's non-root user (uid 1654); the DaemonSet also sets runAsNonRoot and a read-only root filesystem.
USER $APP_UID
ENV DOTNET_gcServer=0
EXPOSE 3500 50001 9090
ENTRYPOINT ["/app/shared-runtime"]
