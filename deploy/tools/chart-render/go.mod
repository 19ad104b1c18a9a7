// chart-render builds in GOPATH mode (GO111MODULE=off) against Debian's Go
// sources in /usr/share/gocode; see build.sh. This file exists so that Go's
// "minimal module compatibility" resolves imports such as
// github.com/Masterminds/sprig/v3 in GOPATH mode. It is not used for module
// builds, which would need the network.
module tessera/chart-render

go 1.19
