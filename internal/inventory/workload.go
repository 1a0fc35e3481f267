package inventory

import (
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Workload is any object that creates pods from a template: Deployment,
// ReplicaSet, StatefulSet, DaemonSet, Job, CronJob or ReplicationController.
type Workload struct {
	Kind       string
	APIVersion string
	metav1.ObjectMeta
	Template corev1.PodTemplateSpec
}

// Ref returns the workload's reference.
func (w *Workload) Ref() Ref { return Ref{Kind: w.Kind, Namespace: w.Namespace, Name: w.Name} }

// WorkloadFromAPI returns the pod-template view of a workload object, or nil
// when obj is not a workload kind.
func WorkloadFromAPI(obj any) *Workload {
	switch o := obj.(type) {
	case *appsv1.Deployment:
		return &Workload{Kind: "Deployment", APIVersion: "apps/v1", ObjectMeta: o.ObjectMeta, Template: o.Spec.Template}
	case *appsv1.ReplicaSet:
		return &Workload{Kind: "ReplicaSet", APIVersion: "apps/v1", ObjectMeta: o.ObjectMeta, Template: o.Spec.Template}
	case *appsv1.StatefulSet:
		return &Workload{Kind: "StatefulSet", APIVersion: "apps/v1", ObjectMeta: o.ObjectMeta, Template: o.Spec.Template}
	case *appsv1.DaemonSet:
		return &Workload{Kind: "DaemonSet", APIVersion: "apps/v1", ObjectMeta: o.ObjectMeta, Template: o.Spec.Template}
	case *batchv1.Job:
		return &Workload{Kind: "Job", APIVersion: "batch/v1", ObjectMeta: o.ObjectMeta, Template: o.Spec.Template}
	case *batchv1.CronJob:
		return &Workload{Kind: "CronJob", APIVersion: "batch/v1", ObjectMeta: o.ObjectMeta, Template: o.Spec.JobTemplate.Spec.Template}
	case *corev1.ReplicationController:
		w := &Workload{Kind: "ReplicationController", APIVersion: "v1", ObjectMeta: o.ObjectMeta}
		if o.Spec.Template != nil {
			w.Template = *o.Spec.Template
		}
		return w
	}
	return nil
}
