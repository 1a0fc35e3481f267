package manifests

import (
	"github.com/keyhole-sec/keyhole/internal/inventory"
)

// allRefs lists every object of an inventory, in the inventory's order.
func allRefs(inv *inventory.Inventory) []inventory.Ref {
	var refs []inventory.Ref
	add := func(kind, ns, name string) {
		refs = append(refs, inventory.Ref{Kind: kind, Namespace: ns, Name: name})
	}
	for _, o := range inv.Namespaces {
		add("Namespace", o.Namespace, o.Name)
	}
	for _, o := range inv.Secrets {
		refs = append(refs, o.Ref())
	}
	for _, o := range inv.ServiceAccounts {
		add("ServiceAccount", o.Namespace, o.Name)
	}
	for _, o := range inv.Roles {
		add("Role", o.Namespace, o.Name)
	}
	for _, o := range inv.ClusterRoles {
		add("ClusterRole", o.Namespace, o.Name)
	}
	for _, o := range inv.RoleBindings {
		add("RoleBinding", o.Namespace, o.Name)
	}
	for _, o := range inv.ClusterRoleBindings {
		add("ClusterRoleBinding", o.Namespace, o.Name)
	}
	for _, o := range inv.Pods {
		add("Pod", o.Namespace, o.Name)
	}
	for _, o := range inv.Workloads {
		refs = append(refs, o.Ref())
	}
	for _, o := range inv.ConfigMaps {
		add("ConfigMap", o.Namespace, o.Name)
	}
	for _, o := range inv.Nodes {
		add("Node", o.Namespace, o.Name)
	}
	for _, o := range inv.Ingresses {
		add("Ingress", o.Namespace, o.Name)
	}
	for _, o := range inv.PersistentVolumeClaims {
		add("PersistentVolumeClaim", o.Namespace, o.Name)
	}
	for _, o := range inv.PersistentVolumes {
		add("PersistentVolume", o.Namespace, o.Name)
	}
	return refs
}
