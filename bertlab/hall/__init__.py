"""A lecture hall: the model work of many Streamlit replicas on one Ray Serve application (bertlab.hall.service),
the app's way to it (bertlab.hall.client, when BERTLAB_MODEL_SERVER is set) and a result cache the replicas share in
Redis (bertlab.hall.shared). Ray is an optional extra (`pip install bertlab[hall]`): nothing here is imported by
the engine or the app unless a hall is configured."""
