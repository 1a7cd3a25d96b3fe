// switchboard-crd-apiserver: k8s.io/apiextensions-apiserver served on its own, so that
// kubectl and kube-rs can talk to it without a core kube-apiserver behind it.
//
// Built by scripts/kube-apiserver.sh from Debian's Go packages when no envtest binaries
// (KUBEBUILDER_ASSETS) are at hand. Differences from the package's stock main.go, and why:
//   - no core API: the stock server reads namespaces, webhooks and its readiness from a
//     core kube-apiserver; here informers come from an in-memory fake clientset and
//     admission and priority-and-fairness are off (both need the core API);
//   - discovery on: in a cluster the aggregator serves /apis, here nothing else would;
//   - authentication by static token (--token-auth-file) or client certificate
//     (--client-ca-file), authorization AlwaysAllow: it is a test server on loopback;
//   - OpenAPI v2 and v3 published, for kubectl explain and server-side apply.
package main

import (
	"context"
	"fmt"
	"net"
	"os"

	"github.com/spf13/cobra"
	noopoteltrace "go.opentelemetry.io/otel/trace/noop"

	"k8s.io/apiextensions-apiserver/pkg/apiserver"
	"k8s.io/apiextensions-apiserver/pkg/cmd/server/options"
	generatedopenapi "k8s.io/apiextensions-apiserver/pkg/generated/openapi"
	"k8s.io/apiserver/pkg/authentication/authenticator"
	"k8s.io/apiserver/pkg/authentication/request/bearertoken"
	"k8s.io/apiserver/pkg/authentication/request/union"
	"k8s.io/apiserver/pkg/authentication/token/tokenfile"
	"k8s.io/apiserver/pkg/authorization/authorizerfactory"
	openapinamer "k8s.io/apiserver/pkg/endpoints/openapi"
	genericapiserver "k8s.io/apiserver/pkg/server"
	"k8s.io/apiserver/pkg/util/openapi"
	"k8s.io/apiserver/pkg/util/webhook"
	"k8s.io/client-go/informers"
	"k8s.io/client-go/kubernetes/fake"
	clientscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/component-base/cli"
	netutils "k8s.io/utils/net"
)

func main() {
	ctx := genericapiserver.SetupSignalContext()
	os.Exit(cli.Run(command(ctx)))
}

func command(ctx context.Context) *cobra.Command {
	opts := options.NewCustomResourceDefinitionsServerOptions(os.Stdout, os.Stderr)
	rec := opts.RecommendedOptions
	rec.CoreAPI = nil
	rec.Admission = nil
	rec.Authentication.RemoteKubeConfigFileOptional = true
	rec.Authentication.SkipInClusterLookup = true
	rec.Authorization.RemoteKubeConfigFileOptional = true
	rec.Features.EnablePriorityAndFairness = false
	var tokenFile string

	cmd := &cobra.Command{
		Use:   "switchboard-crd-apiserver",
		Short: "apiextensions-apiserver on its own (CRDs and custom resources), for tests",
		PersistentPreRunE: func(*cobra.Command, []string) error {
			return opts.ServerRunOptions.ComponentGlobalsRegistry.Set()
		},
		RunE: func(c *cobra.Command, _ []string) error {
			if err := opts.Complete(); err != nil {
				return err
			}
			if err := opts.Validate(); err != nil {
				return err
			}
			return serve(c.Context(), opts, tokenFile)
		},
	}
	cmd.SetContext(ctx)
	flags := cmd.Flags()
	opts.AddFlags(flags)
	flags.StringVar(&tokenFile, "token-auth-file", "", "static tokens, CSV: token,user,uid,\"group1,group2\"")
	return cmd
}

func serve(ctx context.Context, opts *options.CustomResourceDefinitionsServerOptions, tokenFile string) error {
	rec := opts.RecommendedOptions
	loopback := []net.IP{netutils.ParseIPSloppy("127.0.0.1")}
	if err := rec.SecureServing.MaybeDefaultWithSelfSignedCerts("localhost", nil, loopback); err != nil {
		return fmt.Errorf("self-signed serving certificate: %w", err)
	}
	cfg := genericapiserver.NewRecommendedConfig(apiserver.Codecs)
	if err := opts.ServerRunOptions.ApplyTo(&cfg.Config); err != nil {
		return err
	}
	if err := rec.ApplyTo(cfg); err != nil {
		return err
	}
	if err := opts.APIEnablement.ApplyTo(&cfg.Config, apiserver.DefaultAPIResourceConfigSource(), apiserver.Scheme); err != nil {
		return err
	}
	cfg.SharedInformerFactory = informers.NewSharedInformerFactory(fake.NewSimpleClientset(), 0)

	var authns []authenticator.Request
	if tokenFile != "" {
		tokens, err := tokenfile.NewCSV(tokenFile)
		if err != nil {
			return fmt.Errorf("token file %s: %w", tokenFile, err)
		}
		authns = append(authns, bearertoken.New(tokens))
	}
	if cfg.Authentication.Authenticator != nil {
		authns = append(authns, cfg.Authentication.Authenticator)
	}
	cfg.Authentication.Authenticator = union.New(authns...)
	cfg.Authorization.Authorizer = authorizerfactory.NewAlwaysAllowAuthorizer()

	defs := openapi.GetOpenAPIDefinitionsWithoutDisabledFeatures(generatedopenapi.GetOpenAPIDefinitions)
	namer := openapinamer.NewDefinitionNamer(apiserver.Scheme, clientscheme.Scheme)
	cfg.OpenAPIConfig = genericapiserver.DefaultOpenAPIConfig(defs, namer)
	cfg.OpenAPIV3Config = genericapiserver.DefaultOpenAPIV3Config(defs, namer)

	config := &apiserver.Config{
		GenericConfig: cfg,
		ExtraConfig: apiserver.ExtraConfig{
			CRDRESTOptionsGetter: options.NewCRDRESTOptionsGetter(*rec.Etcd, cfg.ResourceTransformers, cfg.StorageObjectCountTracker),
			ServiceResolver:      webhook.NewDefaultServiceResolver(),
			AuthResolverWrapper: webhook.NewDefaultAuthenticationInfoResolverWrapper(
				nil, nil, cfg.LoopbackClientConfig, noopoteltrace.NewTracerProvider()),
		},
	}
	completed := config.Complete()
	completed.GenericConfig.EnableDiscovery = true
	server, err := completed.New(genericapiserver.NewEmptyDelegate())
	if err != nil {
		return err
	}
	return server.GenericAPIServer.PrepareRun().RunWithContext(ctx)
}
