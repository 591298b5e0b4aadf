// Seldon Core v1's SeldonDeployment controller and validating webhooks (module
// github.com/seldonio/seldon-core/operator, pinned in go.mod) under kfkit's test main: the same
// reconciler and webhook code upstream's main.go registers, with every listener on 127.0.0.1 and
// its ports and certificate folder given as flags (upstream's webhook server binds every
// interface and has no switch for it). Configuration otherwise comes from the environment the
// reconciler reads, as in upstream's config/manager/manager.yaml.
package main

import (
	"flag"
	"os"

	machinelearningv1 "github.com/seldonio/seldon-core/operator/apis/machinelearning.seldon.io/v1"
	machinelearningv1alpha2 "github.com/seldonio/seldon-core/operator/apis/machinelearning.seldon.io/v1alpha2"
	machinelearningv1alpha3 "github.com/seldonio/seldon-core/operator/apis/machinelearning.seldon.io/v1alpha3"
	"github.com/seldonio/seldon-core/operator/constants"
	"github.com/seldonio/seldon-core/operator/controllers"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/log/zap"
	"sigs.k8s.io/controller-runtime/pkg/metrics/server"
	"sigs.k8s.io/controller-runtime/pkg/webhook"
)

func main() {
	var metricsAddr, probeAddr, webhookHost, certDir string
	var webhookPort int
	flag.StringVar(&metricsAddr, "metrics-addr", "127.0.0.1:0", "metrics listener")
	flag.StringVar(&probeAddr, "probe-addr", "127.0.0.1:0", "/healthz and /readyz listener")
	flag.StringVar(&webhookHost, "webhook-host", "127.0.0.1", "webhook server address")
	flag.IntVar(&webhookPort, "webhook-port", 9443, "webhook server port")
	flag.StringVar(&certDir, "cert-dir", "", "folder with the webhook server's tls.crt and tls.key")
	flag.Parse()
	ctrl.SetLogger(zap.New())
	log := ctrl.Log.WithName("setup")
	fail := func(err error, what string) {
		if err != nil {
			log.Error(err, what)
			os.Exit(1)
		}
	}

	scheme := runtime.NewScheme()
	fail(clientgoscheme.AddToScheme(scheme), "scheme")
	fail(machinelearningv1.AddToScheme(scheme), "scheme v1")
	fail(machinelearningv1alpha2.AddToScheme(scheme), "scheme v1alpha2")
	fail(machinelearningv1alpha3.AddToScheme(scheme), "scheme v1alpha3")

	config := ctrl.GetConfigOrDie()
	mgr, err := ctrl.NewManager(config, ctrl.Options{
		Scheme:                 scheme,
		Metrics:                server.Options{BindAddress: metricsAddr},
		HealthProbeBindAddress: probeAddr,
		WebhookServer:          webhook.NewServer(webhook.Options{Host: webhookHost, Port: webhookPort, CertDir: certDir}),
	})
	fail(err, "manager")

	ctx := ctrl.SetupSignalHandler()
	fail((&controllers.SeldonDeploymentReconciler{
		Client:    mgr.GetClient(),
		ClientSet: kubernetes.NewForConfigOrDie(config),
		Log:       ctrl.Log.WithName("controllers").WithName("SeldonDeployment"),
		Scheme:    mgr.GetScheme(),
		Namespace: "",
		Recorder:  mgr.GetEventRecorderFor(constants.ControllerName),
	}).SetupWithManager(ctx, mgr, constants.ControllerName), "controller")
	fail((&machinelearningv1alpha2.SeldonDeployment{}).SetupWebhookWithManager(mgr), "webhook v1alpha2")
	fail((&machinelearningv1alpha3.SeldonDeployment{}).SetupWebhookWithManager(mgr), "webhook v1alpha3")
	fail((&machinelearningv1.SeldonDeployment{}).SetupWebhookWithManager(mgr), "webhook v1")
	fail(mgr.AddHealthzCheck("ping", healthz.Ping), "healthz")
	fail(mgr.AddReadyzCheck("webhook", mgr.GetWebhookServer().StartedChecker()), "readyz")

	log.Info("starting manager")
	fail(mgr.Start(ctx), "manager stopped")
}
