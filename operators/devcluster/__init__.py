"""Local development Kubernetes control plane: etcd, kube-apiserver, kube-controller-manager."""
