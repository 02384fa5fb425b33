"""Transfer Lab engine: data, augmentation, models, training jobs, runs. No Streamlit here."""
